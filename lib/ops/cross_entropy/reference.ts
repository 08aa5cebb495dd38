/**
 * Float64 reference of softmax cross-entropy with an ignore index.
 * @module
 */

/** PyTorch's default ignore index. */
export const IGNORE_INDEX: number = -100;

/** Per-row losses, their mean over rows not ignored, and the gradient of `scale · mean`. */
export function crossEntropyReference(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  dims: { rows: number; vocab: number; ignoreIndex?: number; scale?: number },
): { losses: Float64Array; lse: Float64Array; mean: number; count: number; dlogits: Float64Array } {
  const { rows, vocab } = dims;
  const ignore = dims.ignoreIndex ?? IGNORE_INDEX, scale = dims.scale ?? 1;
  const losses = new Float64Array(rows), lse = new Float64Array(rows);
  const dlogits = new Float64Array(rows * vocab);
  let sum = 0, count = 0;
  for (let i = 0; i < rows; i++) {
    let m = -Infinity;
    for (let j = 0; j < vocab; j++) m = Math.max(m, logits[i * vocab + j]);
    let s = 0;
    for (let j = 0; j < vocab; j++) s += Math.exp(logits[i * vocab + j] - m);
    lse[i] = m + Math.log(s);
    if (targets[i] === ignore) continue;
    losses[i] = lse[i] - logits[i * vocab + targets[i]];
    sum += losses[i];
    count++;
  }
  for (let i = 0; i < rows && count > 0; i++) {
    if (targets[i] === ignore) continue;
    for (let j = 0; j < vocab; j++) {
      const p = Math.exp(logits[i * vocab + j] - lse[i]);
      dlogits[i * vocab + j] = (scale / count) * (p - (j === targets[i] ? 1 : 0));
    }
  }
  return { losses, lse, mean: count > 0 ? sum / count : 0, count, dlogits };
}
