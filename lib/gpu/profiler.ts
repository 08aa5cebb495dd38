/**
 * GPU timestamp profiler for benchmarks: while attached to a device's command queue, every
 * dispatch records begin/end timestamps; `read()` returns GPU time per label.
 * @module
 */
import type { Gpu } from "./device.ts";

/** GPU time of one label over the profiled region. */
export interface ProfileEntry {
  /** Dispatch label (the kernel key unless given). */
  label: string;
  /** Number of dispatches with this label. */
  count: number;
  /** Summed GPU time of those dispatches, in milliseconds. */
  ms: number;
  /** GPU time of each dispatch, in milliseconds, in order. */
  times: number[];
}

/** Collects per-dispatch GPU timestamps; needs the `timestamp-query` feature. wgpu caps a query set at 4096 queries, hence 2048 dispatches. */
export class GpuProfiler {
  readonly #querySet: GPUQuerySet;
  readonly #resolveBuffer: GPUBuffer;
  readonly #readBuffer: GPUBuffer;
  #labels: string[] = [];
  #resolved = 0;
  /** Dispatches of this region that ran untimed because the query set was full. */
  untimed = 0;
  /** GPU milliseconds of each dispatch of the last region, in dispatch order. */
  dispatchTimes: number[] = [];
  /**
   * GPU milliseconds from the first dispatch's start to the last one's end in the last region:
   * with the summed dispatch times, it shows how long the GPU sat idle between dispatches.
   */
  spanMs = 0;

  /** A profiler for `gpu` timing up to `capacity` dispatches per region. */
  constructor(readonly gpu: Gpu, readonly capacity = 2048) {
    if (!gpu.features.has("timestamp-query")) {
      throw new Error(
        `GPU profiling needs the "timestamp-query" feature, which ${gpu.adapterName} (${gpu.implementation}) lacks`,
      );
    }
    const device = gpu.device;
    this.#querySet = device.createQuerySet({ type: "timestamp", count: capacity * 2 });
    const bytes = capacity * 2 * 8;
    this.#resolveBuffer = device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    this.#readBuffer = device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  /** Attaches to the device: later dispatches are timed. */
  start(): this {
    this.gpu.commands.submit();
    this.#labels = [];
    this.#resolved = 0;
    this.untimed = 0;
    this.gpu.commands.profiler = this;
    return this;
  }

  /** Dispatches timed so far in this region. */
  get count(): number {
    return this.#labels.length;
  }

  /** Timestamp writes for one pass labelled `label` (called by the command queue). */
  passTimestamps(label: string): GPUComputePassTimestampWrites | undefined {
    const i = this.#labels.length;
    if (i >= this.capacity) {
      this.untimed++; // past capacity: the dispatch runs untimed
      return undefined;
    }
    this.#labels.push(label);
    return {
      querySet: this.#querySet,
      beginningOfPassWriteIndex: 2 * i,
      endOfPassWriteIndex: 2 * i + 1,
    };
  }

  /**
   * Resolves every query written so far into the encoder (called on submit). Always from query
   * 0 at offset 0: `resolveQuerySet` wants 256-byte aligned destination offsets, and queries
   * written in earlier submits keep their values.
   */
  resolve(encoder: GPUCommandEncoder): void {
    const n = this.#labels.length;
    if (n === this.#resolved) return;
    encoder.resolveQuerySet(this.#querySet, 0, n * 2, this.#resolveBuffer, 0);
    this.#resolved = n;
  }

  /** Detaches, waits for the GPU and returns GPU time per label (in first-seen order). */
  async stop(): Promise<ProfileEntry[]> {
    const commands = this.gpu.commands;
    commands.submit();
    if (commands.profiler === this) commands.profiler = undefined;
    const n = this.#labels.length;
    if (n === 0) return [];
    const encoder = this.gpu.device.createCommandEncoder();
    encoder.copyBufferToBuffer(this.#resolveBuffer, 0, this.#readBuffer, 0, n * 16);
    this.gpu.device.queue.submit([encoder.finish()]);
    await this.#readBuffer.mapAsync(GPUMapMode.READ, 0, n * 16);
    const stamps = new BigInt64Array(this.#readBuffer.getMappedRange(0, n * 16).slice(0));
    this.#readBuffer.unmap();
    const byLabel = new Map<string, ProfileEntry>();
    this.dispatchTimes = [];
    let first = stamps[0], last = stamps[1];
    for (let i = 0; i < n; i++) {
      if (stamps[2 * i] < first) first = stamps[2 * i];
      if (stamps[2 * i + 1] > last) last = stamps[2 * i + 1];
      const ns = Number(stamps[2 * i + 1] - stamps[2 * i]);
      this.dispatchTimes.push(Math.max(0, ns) / 1e6);
      const label = this.#labels[i];
      let entry = byLabel.get(label);
      if (!entry) byLabel.set(label, entry = { label, count: 0, ms: 0, times: [] });
      entry.count++;
      entry.ms += Math.max(0, ns) / 1e6;
      entry.times.push(Math.max(0, ns) / 1e6);
    }
    this.spanMs = Math.max(0, Number(last - first)) / 1e6;
    return [...byLabel.values()];
  }

  /** Frees the query set and buffers. */
  destroy(): void {
    this.#querySet.destroy();
    this.#resolveBuffer.destroy();
    this.#readBuffer.destroy();
  }
}
