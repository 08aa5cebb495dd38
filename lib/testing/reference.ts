/**
 * Float64 CPU references and random inputs for tests. Every GPU kernel is checked against the
 * plain definition of what it computes, evaluated here in double precision.
 * @module
 */

/** A seeded generator (mulberry32): the same seed gives the same numbers everywhere. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` uniform values in [lo, hi) from a seeded generator. */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const rand = seededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rand();
  return out;
}

/** Float64 `alpha · op(A) · op(B)` for one matrix, row-major. */
export function matmulReference(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  dims: { m: number; n: number; k: number; transA?: boolean; transB?: boolean; alpha?: number },
): Float64Array {
  const { m, n, k } = dims;
  const alpha = dims.alpha ?? 1;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        const av = dims.transA ? a[p * m + i] : a[i * k + p];
        const bv = dims.transB ? b[j * k + p] : b[p * n + j];
        s += av * bv;
      }
      out[i * n + j] = alpha * s;
    }
  }
  return out;
}

/** Float64 SiLU and its derivative, elementwise. */
export function siluReference(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => v / (1 + Math.exp(-v)));
}

/** Float64 `dy · silu'(x)`. */
export function siluBackwardReference(x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v, i) => {
    const s = 1 / (1 + Math.exp(-v));
    return dy[i] * s * (1 + v * (1 - s));
  });
}
