/**
 * Recording GPU work: dispatches go into one pending command encoder that is submitted in
 * batches, so a training step costs a few submits instead of hundreds. Buffers released while
 * work that reads them is still unsubmitted go back to the pool only after the submit.
 *
 * A step records hundreds of dispatches, so the host cost of each WebGPU call counts (on Dawn's
 * Node-API bindings more than on the built-in implementation). {@linkcode RecordingOptions}
 * cut the calls per dispatch: uniforms share arena buffers (one `writeBuffer` per submit),
 * bind groups are reused, and consecutive dispatches share one compute pass.
 * @module
 */
import type { BufferPool } from "./pool.ts";
import { type BindingValue, type Kernel, type KernelBinding, writeUniforms } from "./kernel.ts";
import { Tensor } from "./tensor.ts";
import type { GpuProfiler } from "./profiler.ts";
import { UniformArena } from "./uniform_arena.ts";
import { BindGroupCache } from "./bind_group_cache.ts";

/**
 * How dispatches are recorded; none changes what the GPU computes (bench/host_overhead.ts
 * compares them). Default: the uniform arena only. On an H100 (2026-11-26, bench/RESULTS.md)
 * the bind group cache and shared passes cut the built-in implementation's host time per
 * dispatch 10× together, but a 125m training step is GPU-bound there (no wall-clock gain), and
 * with Dawn the same step got 3.5× slower with either on; turn them on for host-bound work.
 */
export interface RecordingOptions {
  /**
   * Uniforms of a submit live in shared arena buffers written with one `queue.writeBuffer` per
   * chunk ({@linkcode UniformArena}), instead of one pooled buffer and one write per uniform.
   */
  uniformArena: boolean;
  /** Bind groups with the same buffers, offsets and sizes are reused ({@linkcode BindGroupCache}). */
  bindGroupCache: boolean;
  /**
   * Consecutive dispatches share one compute pass instead of one pass each (WebGPU makes each
   * dispatch's storage writes visible to the later dispatches of a pass). Passes are still
   * per dispatch while a profiler times them.
   */
  sharedPasses: boolean;
}

/** The default recording (see {@linkcode RecordingOptions}). */
export const DEFAULT_RECORDING: Readonly<RecordingOptions> = {
  uniformArena: true,
  bindGroupCache: false,
  sharedPasses: false,
};

/** A dispatch: what to bind by WGSL name, and how many workgroups to launch. */
export interface DispatchOptions {
  /** Tensors, buffers or uniform values by WGSL variable name. */
  bindings: Record<string, BindingValue>;
  /** Workgroup counts in x, y, z (y and z default to 1). */
  workgroups: readonly [number, number?, number?];
  /** Label for the profiler; default: the kernel key. */
  label?: string;
}

/**
 * Workgroup counts covering `n` invocations of `size`-wide workgroups: along x up to the
 * per-dimension limit, then y. Kernels recover the flat index as `gid.x + gid.y·groups.x·size`.
 */
export function linearWorkgroups(
  n: number,
  size: number,
  maxPerDimension = 65535,
): [number, number] {
  const groups = Math.ceil(n / size);
  if (groups <= maxPerDimension) return [groups, 1];
  const y = Math.ceil(groups / maxPerDimension);
  return [Math.ceil(groups / y), y];
}

/** Records dispatches and copies for one device and submits them in batches. */
export class CommandQueue {
  #encoder: GPUCommandEncoder | undefined;
  /** The open compute pass shared by consecutive dispatches (`sharedPasses`). */
  #pass: GPUComputePassEncoder | undefined;
  #passPipeline: GPUComputePipeline | undefined;
  #afterSubmit: GPUBuffer[] = [];
  #pendingDispatches = 0;
  #recording: RecordingOptions;
  readonly #arena: UniformArena;
  readonly #bindGroups: BindGroupCache;
  /** Device limits read once: a property read on Dawn's bindings is a native call. */
  readonly #limits: {
    maxGroups: number;
    maxStorageBinding: number;
    storageAlign: number;
  };
  /** When set, every dispatch is timed with GPU timestamps. */
  profiler: GpuProfiler | undefined;
  /** Dispatches after which the pending work is submitted on its own. */
  autoSubmitEvery = 256;

  /** A queue recording work for `device`, releasing buffers into `pool`. */
  constructor(
    readonly device: GPUDevice,
    readonly pool: BufferPool,
    recording: Partial<RecordingOptions> = {},
  ) {
    const limits = device.limits;
    this.#limits = {
      maxGroups: limits.maxComputeWorkgroupsPerDimension,
      maxStorageBinding: limits.maxStorageBufferBindingSize,
      storageAlign: limits.minStorageBufferOffsetAlignment,
    };
    this.#recording = { ...DEFAULT_RECORDING, ...recording };
    this.#arena = new UniformArena(device, pool, { align: limits.minUniformBufferOffsetAlignment });
    this.#bindGroups = new BindGroupCache(device);
  }

  /** How dispatches are recorded now. */
  get recording(): Readonly<RecordingOptions> {
    return { ...this.#recording };
  }

  /** Changes how later dispatches are recorded (submitting what is recorded so far). */
  setRecording(options: Partial<RecordingOptions>): void {
    this.submit();
    this.#recording = { ...this.#recording, ...options };
  }

  /** Bind group cache lookups so far: answered from the cache, and created. */
  get bindGroupStats(): { hits: number; misses: number; size: number } {
    const c = this.#bindGroups;
    return { hits: c.hits, misses: c.misses, size: c.size };
  }

  /** The pending encoder (created on first use), for commands outside compute passes. */
  get encoder(): GPUCommandEncoder {
    this.#endPass();
    return this.#openEncoder();
  }

  #openEncoder(): GPUCommandEncoder {
    this.#encoder ??= this.device.createCommandEncoder();
    return this.#encoder;
  }

  #endPass(): void {
    this.#pass?.end();
    this.#pass = undefined;
    this.#passPipeline = undefined;
  }

  /** True while recorded work waits for {@linkcode submit}. */
  get hasPendingWork(): boolean {
    return this.#encoder !== undefined;
  }

  /**
   * Returns a tensor's buffer to the pool. Recorded work may still use it, so until the next
   * submit it only serves GPU-written outputs, never host writes (see `BufferPool.acquire`).
   */
  releaseBuffer(buffer: GPUBuffer): void {
    this.pool.release(buffer, this.#encoder !== undefined);
  }

  /** Records one compute dispatch. */
  dispatch(kernel: Kernel, options: DispatchOptions): void {
    const [x, y = 1, z = 1] = options.workgroups;
    const maxGroups = this.#limits.maxGroups;
    for (const n of [x, y, z]) {
      if (!Number.isInteger(n) || n < 0 || n > maxGroups) {
        throw new Error(
          `Invalid workgroup count ${n} for ${kernel.key}: must be an integer in [0, ${maxGroups}]`,
        );
      }
    }
    if (x * y * z === 0) return;
    const groups = kernel.groups.map((members, g) => this.#bindGroup(kernel, g, members, options));
    for (const name of Object.keys(options.bindings)) {
      if (!kernel.bindings.has(name)) {
        const known = [...kernel.bindings.keys()].join(", ");
        throw new Error(`Unknown binding "${name}" for kernel ${kernel.key}: it binds [${known}]`);
      }
    }
    const timestampWrites = this.profiler?.passTimestamps(options.label ?? kernel.key);
    let pass: GPUComputePassEncoder;
    if (this.#recording.sharedPasses && !timestampWrites) {
      this.#pass ??= this.#openEncoder().beginComputePass({});
      pass = this.#pass;
    } else {
      this.#endPass();
      pass = this.#openEncoder().beginComputePass(timestampWrites ? { timestampWrites } : {});
    }
    if (pass !== this.#pass || this.#passPipeline !== kernel.pipeline) {
      pass.setPipeline(kernel.pipeline);
      if (pass === this.#pass) this.#passPipeline = kernel.pipeline;
    }
    groups.forEach(({ group, offsets }, g) =>
      offsets.length > 0 ? pass.setBindGroup(g, group, offsets) : pass.setBindGroup(g, group)
    );
    pass.dispatchWorkgroups(x, y, z);
    if (pass !== this.#pass) pass.end();
    if (++this.#pendingDispatches >= this.autoSubmitEvery) this.submit();
  }

  /** The bind group `g` of a dispatch and its dynamic offsets (one per uniform, in binding order). */
  #bindGroup(
    kernel: Kernel,
    g: number,
    members: readonly KernelBinding[],
    options: DispatchOptions,
  ): { group: GPUBindGroup; offsets: number[] } {
    const entries: { binding: number; resource: GPUBufferBinding }[] = [];
    const offsets: number[] = [];
    for (const binding of members) {
      const name = binding.name;
      const value = options.bindings[name];
      if (value === undefined) {
        throw new Error(`Missing binding "${name}" for kernel ${kernel.key}`);
      }
      let resource: GPUBufferBinding;
      if (value instanceof Tensor) resource = this.#tensorBinding(kernel, binding, value);
      else if (isGpuBuffer(value)) resource = { buffer: value };
      else {
        if (binding.kind !== "uniform") {
          throw new Error(
            `Binding "${name}" of ${kernel.key} is storage: pass a Tensor or GPUBuffer`,
          );
        }
        const size = binding.uniformSize;
        if (this.#recording.uniformArena) {
          const slice = this.#arena.slice(size);
          writeUniforms(kernel, binding, { values: value, view: slice.view, at: slice.offset });
          resource = { buffer: slice.buffer, offset: 0, size };
          offsets.push(slice.offset);
        } else {
          const data = new ArrayBuffer(size);
          writeUniforms(kernel, binding, { values: value, view: new DataView(data), at: 0 });
          const buffer = this.pool.acquire(
            size,
            GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
            false,
          );
          this.device.queue.writeBuffer(buffer, 0, data);
          this.#afterSubmit.push(buffer);
          resource = { buffer, offset: 0, size };
          offsets.push(0);
        }
      }
      entries.push({ binding: binding.binding, resource });
    }
    const layout = kernel.layouts[g];
    const group = this.#recording.bindGroupCache
      ? this.#bindGroups.get(layout, entries)
      : this.device.createBindGroup({ layout, entries });
    return { group, offsets };
  }

  /**
   * A tensor's binding: its own bytes only (not the pool bucket's slack), at its offset if it
   * is a view; both checked against the device limits so the error names the tensor. A tensor
   * smaller than one element of the WGSL array (a [1] tensor bound as `array<vec4<f32>>`) binds
   * that element's bytes of its buffer.
   */
  #tensorBinding(kernel: Kernel, binding: KernelBinding, t: Tensor): GPUBufferBinding {
    const limits = this.#limits;
    const { name, minBindingBytes: min } = binding;
    const offset = t.byteOffset;
    const size = Math.max(t.bindingSize, min);
    // a tensor's own bytes lie in its buffer; only the widened binding needs the (on Dawn,
    // native) buffer size read
    if (size > t.bindingSize && offset + size > t.buffer.size) {
      throw new Error(
        `Binding "${name}" of ${kernel.key}: tensor [${
          t.shape.join(", ")
        }] has ${t.byteLength} bytes, fewer than the ${min} of one element of its WGSL array`,
      );
    }
    if (size > limits.maxStorageBinding) {
      throw new Error(
        `Binding "${name}" of ${kernel.key}: tensor [${
          t.shape.join(", ")
        }] spans ${size} bytes, over the device's maxStorageBufferBindingSize ${limits.maxStorageBinding} (process it in row chunks)`,
      );
    }
    if (offset % limits.storageAlign !== 0) {
      throw new Error(
        `Binding "${name}" of ${kernel.key}: view [${
          t.shape.join(", ")
        }] starts at byte ${offset}, not a multiple of minStorageBufferOffsetAlignment ${limits.storageAlign}`,
      );
    }
    return { buffer: t.buffer, offset, size };
  }

  /** Records a buffer-to-buffer copy of `byteLength` bytes. */
  copy(
    src: GPUBuffer,
    srcOffset: number,
    dst: GPUBuffer,
    dstOffset: number,
    byteLength: number,
  ): void {
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, byteLength);
  }

  /** Submits everything recorded so far. */
  submit(): void {
    if (!this.#encoder) return;
    this.#endPass();
    this.#arena.flush(); // lands before the commands below, which read it
    this.profiler?.resolve(this.#encoder);
    this.device.queue.submit([this.#encoder.finish()]);
    this.#encoder = undefined;
    this.#pendingDispatches = 0;
    this.pool.idle();
    this.#arena.afterSubmit();
    for (const b of this.#afterSubmit) this.pool.release(b);
    this.#afterSubmit = [];
  }

  /** Submits and waits until the GPU has finished all submitted work. */
  async finish(): Promise<void> {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
  }
}

function isGpuBuffer(value: BindingValue): value is GPUBuffer {
  return typeof (value as GPUBuffer).mapAsync === "function";
}
