/**
 * Uniform values of many dispatches packed into shared buffers: each dispatch gets its own
 * aligned slice, and a whole chunk reaches the GPU with one `queue.writeBuffer` (before the
 * submit that uses it), instead of one pooled buffer and one write per dispatch.
 * @module
 */
import type { BufferPool } from "./pool.ts";

/** Default chunk size: room for 1024 slices of 256 B, so a submit usually writes one chunk. */
export const ARENA_CHUNK_BYTES = 1 << 18;

/** One slice of the arena: where the GPU reads it, and where the host writes it. */
export interface UniformSlice {
  /** The chunk's GPU buffer (bind it at offset 0 with a dynamic offset of `offset`). */
  buffer: GPUBuffer;
  /** Byte offset of the slice in `buffer` and in `view`. */
  offset: number;
  /** Host copy of the chunk: write the slice's bytes here before {@linkcode UniformArena.flush}. */
  view: DataView;
}

/**
 * Slices of uniform chunks for one command queue. A chunk is written when it is full or at
 * {@linkcode flush} (a queue write lands before every command submitted after it, and each
 * dispatch reads only its own slice), and goes back to the pool after the submit.
 */
export class UniformArena {
  readonly #align: number;
  readonly #chunkBytes: number;
  #host: Uint8Array<ArrayBuffer>;
  #view: DataView;
  #buffer: GPUBuffer | undefined;
  #used = 0;
  #written: GPUBuffer[] = [];

  /** An arena taking chunks from `pool`; slices are aligned to `options.align` bytes. */
  constructor(
    readonly device: GPUDevice,
    readonly pool: BufferPool,
    options: { align: number; chunkBytes?: number },
  ) {
    this.#align = options.align;
    this.#chunkBytes = options.chunkBytes ?? ARENA_CHUNK_BYTES;
    this.#host = new Uint8Array(this.#chunkBytes);
    this.#view = new DataView(this.#host.buffer);
  }

  /** A fresh slice of `bytes` bytes. */
  slice(bytes: number): UniformSlice {
    const size = Math.ceil(bytes / this.#align) * this.#align;
    if (!this.#buffer || this.#used + size > this.#host.byteLength) {
      this.flush();
      if (size > this.#host.byteLength) {
        this.#host = new Uint8Array(size);
        this.#view = new DataView(this.#host.buffer);
      }
      this.#buffer = this.pool.acquire(
        Math.max(size, this.#chunkBytes),
        GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        false,
      );
    }
    const offset = this.#used;
    this.#used += size;
    return { buffer: this.#buffer, offset, view: this.#view };
  }

  /** Writes the filled part of the current chunk to the GPU (call before submitting). */
  flush(): void {
    if (!this.#buffer) return;
    this.device.queue.writeBuffer(this.#buffer, 0, this.#host, 0, this.#used);
    this.#written.push(this.#buffer);
    this.#buffer = undefined;
    this.#used = 0;
  }

  /** Returns the written chunks to the pool (call after the submit that reads them). */
  afterSubmit(): void {
    for (const b of this.#written) this.pool.release(b);
    this.#written = [];
  }
}
