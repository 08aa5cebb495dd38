/**
 * Float64 references of the pointwise model ops in `shaders/activation.wgsl`.
 * @module
 */

/** φ(x) = elu(x) + 1. */
export function elu1Reference(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => (v > 0 ? v + 1 : Math.exp(v)));
}

/** dy · φ'(x). */
export function elu1BackwardReference(x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v, i) => dy[i] * (v > 0 ? 1 : Math.exp(v)));
}

/** Gradients of y = a ⊙ b. */
export function gluBackwardReference(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  dy: ArrayLike<number>,
): { da: Float64Array; db: Float64Array } {
  return {
    da: Float64Array.from(dy, (g, i) => g * b[i]),
    db: Float64Array.from(dy, (g, i) => g * a[i]),
  };
}
