/**
 * A pool of GPU buffers keyed by (size bucket, usage), so the training loop reuses memory
 * instead of creating and destroying buffers every step. With `nanFill`, every buffer it
 * hands out is first filled with NaN: a kernel that forgets to write an element is caught.
 * @module
 */

/** Size classes: multiples of 256 B up to 64 KiB, then 8 steps per power of two (≤ 12.5% waste). */
export function bucketSize(byteLength: number): number {
  if (!Number.isInteger(byteLength) || byteLength < 0) {
    throw new Error(`Invalid buffer size ${byteLength}: must be a non-negative integer`);
  }
  const n = Math.max(byteLength, 4);
  if (n <= 65536) return Math.ceil(n / 256) * 256;
  const step = 2 ** (Math.floor(Math.log2(n)) - 3);
  return Math.ceil(n / step) * step;
}

const NAN_CHUNK_BYTES = 1 << 22;
let nanChunk: Uint32Array<ArrayBuffer> | undefined;
function nanWords(): Uint32Array<ArrayBuffer> {
  nanChunk ??= new Uint32Array(NAN_CHUNK_BYTES / 4).fill(0x7fc00000); // quiet NaN (f32)
  return nanChunk;
}

/** Options of {@linkcode BufferPool}. */
export interface BufferPoolOptions {
  /** Fill each buffer with NaN when it is handed out. */
  nanFill?: boolean;
}

/** Reuses GPU buffers by size bucket and usage; tracks live and peak bytes. */
export class BufferPool {
  /** Whether handed-out buffers are NaN-filled. */
  readonly nanFill: boolean;
  /**
   * Free buffers by key, each list in descending creation order: the oldest is taken first, so
   * work that acquires and releases in the same order (a training step) gets the same buffers
   * every time, and the command queue's cached bind groups keep matching.
   */
  #free = new Map<string, GPUBuffer[]>();
  /** Creation number, key and size of each buffer made here (no native getter per release). */
  readonly #made = new WeakMap<GPUBuffer, { id: number; key: string; size: number }>();
  #created = 0;
  /** Free buffers that recorded, not yet submitted work still uses (see {@linkcode release}). */
  #busy = new Set<GPUBuffer>();
  #allocatedBytes = 0;
  #inUseBytes = 0;
  #peakInUseBytes = 0;

  /** A pool of buffers of `device`. */
  constructor(readonly device: GPUDevice, options: BufferPoolOptions = {}) {
    this.nanFill = options.nanFill ?? false;
  }

  /** Bytes of GPU memory held by the pool (in use or free). */
  get allocatedBytes(): number {
    return this.#allocatedBytes;
  }
  /** Bytes currently handed out. */
  get inUseBytes(): number {
    return this.#inUseBytes;
  }
  /** Largest `inUseBytes` seen since creation or the last {@linkcode resetPeak}. */
  get peakInUseBytes(): number {
    return this.#peakInUseBytes;
  }
  /** Starts peak tracking afresh from the bytes in use now. */
  resetPeak(): void {
    this.#peakInUseBytes = this.#inUseBytes;
  }

  /**
   * A buffer of at least `byteLength` bytes with exactly `usage`. `fill: false` skips the NaN
   * fill for buffers the caller overwrites at once from the host (uniforms, staging).
   *
   * A buffer released while recorded work still uses it may come back at once for output that
   * the GPU writes (later commands run after earlier ones), but never for a host write
   * (`queue.writeBuffer` lands before unsubmitted commands): those wait for {@linkcode idle}.
   */
  acquire(byteLength: number, usage: GPUBufferUsageFlags, fill = true): GPUBuffer {
    const size = bucketSize(byteLength);
    const key = `${usage}:${size}`;
    const hostWrites = !fill || (this.nanFill && (usage & GPUBufferUsage.COPY_DST) !== 0);
    const buffer = this.#takeFree(key, hostWrites) ?? this.#create(size, usage);
    this.#inUseBytes += size;
    this.#peakInUseBytes = Math.max(this.#peakInUseBytes, this.#inUseBytes);
    if (fill && this.nanFill && usage & GPUBufferUsage.COPY_DST) this.#fillNaN(buffer);
    return buffer;
  }

  /**
   * Returns a buffer to the pool; the caller must not use it afterwards. `busy`: recorded work
   * that is not submitted yet still uses it.
   */
  release(buffer: GPUBuffer, busy = false): void {
    const made = this.#made.get(buffer);
    const key = made?.key ?? `${buffer.usage}:${buffer.size}`;
    let list = this.#free.get(key);
    if (!list) this.#free.set(key, list = []);
    const id = made?.id ?? -1;
    let at = list.length;
    while (at > 0 && (this.#made.get(list[at - 1])?.id ?? -1) < id) at--;
    list.splice(at, 0, buffer);
    if (busy) this.#busy.add(buffer);
    this.#inUseBytes -= made?.size ?? buffer.size;
  }

  /** Called after a submit: no free buffer is used by unsubmitted work any more. */
  idle(): void {
    this.#busy.clear();
  }

  #takeFree(key: string, avoidBusy: boolean): GPUBuffer | undefined {
    const list = this.#free.get(key);
    if (!list || list.length === 0) return undefined;
    if (!avoidBusy) {
      const buffer = list.pop()!;
      this.#busy.delete(buffer);
      return buffer;
    }
    for (let i = list.length - 1; i >= 0; i--) {
      if (!this.#busy.has(list[i])) return list.splice(i, 1)[0];
    }
    return undefined;
  }

  /** Destroys every free buffer that no unsubmitted work uses (those wait for a later clear). */
  clear(): void {
    for (const [key, list] of this.#free) {
      const keep = list.filter((b) => this.#busy.has(b));
      for (const b of list) {
        if (this.#busy.has(b)) continue;
        this.#allocatedBytes -= b.size;
        b.destroy();
      }
      if (keep.length > 0) this.#free.set(key, keep);
      else this.#free.delete(key);
    }
  }

  #create(size: number, usage: GPUBufferUsageFlags): GPUBuffer {
    const maxSize = this.device.limits.maxBufferSize;
    if (size > maxSize) {
      throw new Error(
        `Cannot allocate a GPU buffer of ${size} bytes: the device allows at most ${maxSize}`,
      );
    }
    this.#allocatedBytes += size;
    const buffer = this.device.createBuffer({ size, usage });
    this.#made.set(buffer, { id: this.#created++, key: `${usage}:${size}`, size });
    return buffer;
  }

  #fillNaN(buffer: GPUBuffer): void {
    const words = nanWords();
    for (let offset = 0; offset < buffer.size; offset += NAN_CHUNK_BYTES) {
      const bytes = Math.min(NAN_CHUNK_BYTES, buffer.size - offset);
      this.device.queue.writeBuffer(buffer, offset, words, 0, bytes / 4);
    }
  }
}
