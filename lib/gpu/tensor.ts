/**
 * GPU tensors: a pooled storage buffer with a shape and dtype, uploads, and downloads that
 * gather many tensors into one readback (Deno's built-in WebGPU waits ≈11 ms per readback).
 * @module
 */
import type { Gpu } from "./device.ts";

/** Element types a tensor may hold. */
export type DType = "f32" | "f16" | "u32" | "i32";
/** Host arrays that map onto a dtype. */
export type HostArray = Float32Array | Float16Array | Uint32Array | Int32Array;

const BYTES: Record<DType, number> = { f32: 4, f16: 2, u32: 4, i32: 4 };
/** Usage of every tensor buffer: bindable as storage, and copyable both ways. */
export const TENSOR_USAGE = 0x80 /* STORAGE */ | 0x08 /* COPY_DST */ | 0x04; /* COPY_SRC */

/** Number of elements of `shape`, checking that every dimension is a non-negative integer. */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new Error(
        `Invalid shape [${shape.join(", ")}]: dimensions must be non-negative integers`,
      );
    }
    n *= d;
  }
  return n;
}

/** Where a view lies in the buffer of the tensor it was cut from. */
interface ViewOf {
  /** The tensor that owns the buffer (and alone may release it). */
  owner: Tensor;
  /** Byte offset of the view's first element in the buffer. */
  byteOffset: number;
}

/**
 * A dense row-major tensor living in one GPU buffer, or a view of consecutive rows of another
 * tensor ({@linkcode Tensor.rows}): views bind at a byte offset, so an op can work on a slice
 * of a tensor larger than one storage binding may be.
 */
export class Tensor {
  #released = false;
  readonly #view: ViewOf | undefined;
  /** Wraps `buffer` (from `gpu.pool`) as a tensor; prefer {@linkcode emptyTensor} / {@linkcode uploadTensor}. */
  constructor(
    readonly gpu: Gpu,
    readonly buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly dtype: DType = "f32",
    view?: ViewOf,
  ) {
    this.#view = view;
  }

  /** Number of elements. */
  get size(): number {
    return shapeSize(this.shape);
  }
  /** Bytes of data (the buffer may be larger: pool buckets). */
  get byteLength(): number {
    return this.size * BYTES[this.dtype];
  }
  /** Offset of the first element in the buffer (0 unless this is a view). */
  get byteOffset(): number {
    return this.#view?.byteOffset ?? 0;
  }
  /** Bytes a binding of this tensor spans: the data padded to whole 4-byte words (at least one). */
  get bindingSize(): number {
    return bufferBytes(this.shape, this.dtype);
  }
  /** Returns the buffer to the pool (recorded work that reads it still sees its data). */
  release(): void {
    if (this.#view) {
      throw new Error(
        `Tensor view [${this.shape.join(", ")}] cannot be released: release the tensor it views`,
      );
    }
    if (this.#released) throw new Error(`Tensor [${this.shape.join(", ")}] released twice`);
    this.#released = true;
    this.gpu.commands.releaseBuffer(this.buffer);
  }
  /** Same buffer seen with another shape of the same size. */
  reshape(shape: readonly number[]): Tensor {
    if (shapeSize(shape) !== this.size) {
      throw new Error(
        `Cannot reshape [${this.shape.join(", ")}] to [${shape.join(", ")}]: sizes differ`,
      );
    }
    return new Tensor(this.gpu, this.buffer, shape, this.dtype, this.#view);
  }
  /**
   * A view of `count` consecutive entries of the first dimension from `start`: shape
   * `[count, ...rest]`, same buffer, bound at a byte offset. A view is written and read like
   * any tensor but not released; ops bind it only if its offset is a multiple of the device's
   * `minStorageBufferOffsetAlignment` (256 B on every GPU seen so far).
   */
  rows(start: number, count: number): Tensor {
    const [first, ...rest] = this.shape;
    if (
      first === undefined || !Number.isInteger(start) || !Number.isInteger(count) || start < 0 ||
      count < 0 || start + count > first
    ) {
      throw new Error(
        `Tensor [${this.shape.join(", ")}]: rows ${start} … ${
          start + count - 1
        } must lie within its first dimension`,
      );
    }
    const rowBytes = shapeSize(rest) * BYTES[this.dtype];
    const byteOffset = this.byteOffset + start * rowBytes;
    if (byteOffset % 4 !== 0) {
      throw new Error(
        `Tensor [${
          this.shape.join(", ")
        }]: a view from row ${start} starts at byte ${byteOffset}, not a multiple of 4`,
      );
    }
    const owner = this.#view?.owner ?? this;
    return new Tensor(this.gpu, this.buffer, [count, ...rest], this.dtype, { owner, byteOffset });
  }
}

/** Bytes of the buffer behind a tensor: the data padded to whole 4-byte words (at least one). */
function bufferBytes(shape: readonly number[], dtype: DType): number {
  return Math.max(4, Math.ceil((shapeSize(shape) * BYTES[dtype]) / 4) * 4);
}

/** An uninitialized tensor (NaN-filled when the pool's `nanFill` is on). */
export function emptyTensor(gpu: Gpu, shape: readonly number[], dtype: DType = "f32"): Tensor {
  const bytes = bufferBytes(shape, dtype);
  return new Tensor(gpu, gpu.pool.acquire(bytes, TENSOR_USAGE), shape, dtype);
}

function toDType(data: HostArray | readonly number[], dtype: DType): HostArray {
  if (dtype === "f32") return data instanceof Float32Array ? data : Float32Array.from(data);
  if (dtype === "f16") return data instanceof Float16Array ? data : Float16Array.from(data);
  if (dtype === "u32") return data instanceof Uint32Array ? data : Uint32Array.from(data);
  return data instanceof Int32Array ? data : Int32Array.from(data);
}

/** Writes host data into an existing tensor (submitting recorded work first, to keep order). */
export function writeTensor(tensor: Tensor, data: HostArray | readonly number[]): void {
  tensor.gpu.commands.submit(); // a queue write lands before unsubmitted commands
  writeHost(tensor, data);
}

function writeHost(tensor: Tensor, data: HostArray | readonly number[]): void {
  if (data.length !== tensor.size) {
    throw new Error(
      `Cannot write ${data.length} values into a tensor of shape [${
        tensor.shape.join(", ")
      }] (${tensor.size} elements)`,
    );
  }
  const typed = toDType(data, tensor.dtype);
  const queue = tensor.gpu.device.queue;
  const bytes = typed.byteLength - (typed.byteLength % 4);
  if (bytes > 0) {
    const at = tensor.byteOffset;
    queue.writeBuffer(tensor.buffer, at, typed.buffer as ArrayBuffer, typed.byteOffset, bytes);
  }
  if (bytes < typed.byteLength) {
    // odd-length f16: the buffer is padded to 4 bytes; write the last element with its pad.
    const tail = new Uint8Array(4);
    tail.set(new Uint8Array(typed.buffer, typed.byteOffset + bytes, typed.byteLength - bytes));
    queue.writeBuffer(tensor.buffer, tensor.byteOffset + bytes, tail);
  }
}

/**
 * A new tensor holding `data` (converted to `dtype`). Its buffer is one that no unsubmitted
 * work uses, so the upload needs no submit and recorded work keeps batching.
 */
export function uploadTensor(
  gpu: Gpu,
  data: HostArray | readonly number[],
  shape: readonly number[],
  dtype: DType = "f32",
): Tensor {
  const bytes = bufferBytes(shape, dtype);
  const tensor = new Tensor(gpu, gpu.pool.acquire(bytes, TENSOR_USAGE, false), shape, dtype);
  try {
    writeHost(tensor, data);
  } catch (e) {
    tensor.release();
    throw e;
  }
  return tensor;
}

function fromBytes(bytes: ArrayBuffer, dtype: DType, length: number): HostArray {
  if (dtype === "f32") return new Float32Array(bytes, 0, length);
  if (dtype === "f16") return new Float16Array(bytes, 0, length);
  if (dtype === "u32") return new Uint32Array(bytes, 0, length);
  return new Int32Array(bytes, 0, length);
}

/** Records a GPU copy of `src` into `dst` (views included); both must hold the same bytes. */
export function copyTensor(gpu: Gpu, src: Tensor, dst: Tensor): void {
  if (src.byteLength !== dst.byteLength) {
    throw new Error(
      `copyTensor: source [${src.shape.join(", ")}] ${src.dtype} and destination [${
        dst.shape.join(", ")
      }] ${dst.dtype} differ in size`,
    );
  }
  const bytes = Math.ceil(src.byteLength / 4) * 4;
  if (bytes > 0) gpu.commands.copy(src.buffer, src.byteOffset, dst.buffer, dst.byteOffset, bytes);
}

/** Reads back many tensors with one staging buffer and one `mapAsync`. */
export function downloadTensors(gpu: Gpu, tensors: readonly Tensor[]): Promise<HostArray[]> {
  if (tensors.every((t) => t.byteLength === 0)) {
    return Promise.resolve(tensors.map((t) => fromBytes(new ArrayBuffer(0), t.dtype, 0)));
  }
  return readBack(
    gpu,
    tensors,
    (mapped, offsets) =>
      tensors.map((t, i) =>
        fromBytes(mapped.slice(offsets[i], offsets[i] + t.byteLength), t.dtype, t.size)
      ),
  );
}

/**
 * Reads back f32 tensors in one batch straight into `dest`, tensor i at element `at[i]`
 * (default: one after the other); returns `dest`. With a `dest` that is reused, this saves
 * the fresh arrays of {@linkcode downloadTensors} and a copy.
 */
export function downloadTensorsInto(
  gpu: Gpu,
  tensors: readonly Tensor[],
  dest: Float32Array,
  at?: readonly number[],
): Promise<Float32Array> {
  const starts = at ?? tensors.map((_, i) => tensors.slice(0, i).reduce((a, t) => a + t.size, 0));
  tensors.forEach((t, i) => {
    if (t.dtype !== "f32" || starts[i] < 0 || starts[i] + t.size > dest.length) {
      throw new Error(
        `downloadTensorsInto: ${t.dtype} tensor [${t.shape.join(", ")}] at element ${
          starts[i]
        } does not fit an f32 destination of ${dest.length}`,
      );
    }
  });
  return readBack(gpu, tensors, (mapped, offsets) => {
    tensors.forEach((t, i) => dest.set(new Float32Array(mapped, offsets[i], t.size), starts[i]));
    return dest;
  });
}

/** Copies `tensors` into one staging buffer, maps it and hands the mapped bytes to `take`. */
async function readBack<R>(
  gpu: Gpu,
  tensors: readonly Tensor[],
  take: (mapped: ArrayBuffer, offsets: number[]) => R,
): Promise<R> {
  const offsets: number[] = [];
  let total = 0;
  for (const t of tensors) {
    offsets.push(total);
    total += Math.ceil(t.byteLength / 256) * 256;
  }
  const staging = gpu.pool.acquire(
    Math.max(total, 4),
    GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    false,
  );
  tensors.forEach((t, i) => {
    const bytes = Math.ceil(t.byteLength / 4) * 4;
    if (bytes > 0) gpu.commands.copy(t.buffer, t.byteOffset, staging, offsets[i], bytes);
  });
  gpu.commands.submit();
  await staging.mapAsync(GPUMapMode.READ, 0, Math.max(total, 4));
  try {
    return take(staging.getMappedRange(0, Math.max(total, 4)), offsets);
  } finally {
    staging.unmap();
    gpu.pool.release(staging);
  }
}

/** Reads back one f32 tensor (or any dtype, converted to Float32Array). */
export async function downloadTensor(gpu: Gpu, tensor: Tensor): Promise<Float32Array> {
  const [data] = await downloadTensors(gpu, [tensor]);
  return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
}
