/**
 * Float64 references of the head layout moves: token layout `[B, n, D]` (head h in columns
 * h·hd …) to head layout `[B, H, n, hd]` and back, and the split of the fused `[q | k | v | u]`
 * projection.
 * @module
 */
import type { HeadDims } from "./heads.ts";

/** `[B, n, D]` (row stride `stride`, starting at column `offset`) → `[B, H, n, hd]`. */
export function tokensToHeadsReference(
  x: ArrayLike<number>,
  dims: HeadDims & { stride?: number; offset?: number },
): Float64Array {
  const { batch: B, length: n, heads: H, headDim: hd } = dims;
  const D = H * hd, stride = dims.stride ?? D, offset = dims.offset ?? 0;
  const out = new Float64Array(B * H * n * hd);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < n; t++) {
        for (let e = 0; e < hd; e++) {
          out[((b * H + h) * n + t) * hd + e] = x[(b * n + t) * stride + offset + h * hd + e];
        }
      }
    }
  }
  return out;
}

/** `[B, H, n, hd] → [B, n, D]`. */
export function headsToTokensReference(x: ArrayLike<number>, dims: HeadDims): Float64Array {
  const { batch: B, length: n, heads: H, headDim: hd } = dims;
  const D = H * hd;
  const out = new Float64Array(B * n * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < n; t++) {
        for (let e = 0; e < hd; e++) {
          out[(b * n + t) * D + h * hd + e] = x[((b * H + h) * n + t) * hd + e];
        }
      }
    }
  }
  return out;
}

/** q, k, v `[B, H, n, hd]` and u `[B, n, D]` of the fused `[B, n, 4D]`. */
export function splitQkvuReference(
  fused: ArrayLike<number>,
  dims: HeadDims,
): { q: Float64Array; k: Float64Array; v: Float64Array; u: Float64Array } {
  const D = dims.heads * dims.headDim, rows = dims.batch * dims.length;
  const part = (i: number) =>
    tokensToHeadsReference(fused, { ...dims, stride: 4 * D, offset: i * D });
  const u = new Float64Array(rows * D);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < D; j++) u[r * D + j] = fused[r * 4 * D + 3 * D + j];
  }
  return { q: part(0), k: part(1), v: part(2), u };
}
