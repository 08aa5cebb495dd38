/**
 * Argument checks shared by the op wrappers: one-line errors naming the op, the tensor, the
 * value and the rule.
 * @module
 */
import type { DType, Tensor } from "../gpu/tensor.ts";

/** `[a, b, c]` for messages. */
export function describeShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Throws unless `tensor` has `dtype`. */
export function requireDType(op: string, name: string, tensor: Tensor, dtype: DType = "f32"): void {
  if (tensor.dtype !== dtype) {
    throw new Error(`${op}: ${name} must be ${dtype}, got ${tensor.dtype}`);
  }
}

/** Throws unless `tensor` is f32 with exactly `shape`. */
export function requireShape(
  op: string,
  name: string,
  tensor: Tensor,
  shape: readonly number[],
): void {
  requireDType(op, name, tensor);
  const same = tensor.shape.length === shape.length && tensor.shape.every((d, i) => d === shape[i]);
  if (!same) {
    throw new Error(
      `${op}: ${name} has shape ${describeShape(tensor.shape)}, expected ${describeShape(shape)}`,
    );
  }
}

/** Throws if two of `tensors` share a buffer (WebGPU forbids a writable alias in one dispatch). */
export function requireDistinct(op: string, tensors: Record<string, Tensor | undefined>): void {
  const seen = new Map<GPUBuffer, string>();
  for (const [name, t] of Object.entries(tensors)) {
    if (!t) continue;
    const other = seen.get(t.buffer);
    if (other) {
      throw new Error(`${op}: ${name} and ${other} share one buffer; pass distinct tensors`);
    }
    seen.set(t.buffer, name);
  }
}

/** `[rows, d]` of a tensor viewed as rows over its last dimension. */
export function rowsOf(op: string, name: string, tensor: Tensor): [number, number] {
  requireDType(op, name, tensor);
  const d = tensor.shape.at(-1);
  if (d === undefined || d === 0) {
    throw new Error(
      `${op}: ${name} ${describeShape(tensor.shape)} needs a non-empty last dimension`,
    );
  }
  return [tensor.size / d, d];
}
