/**
 * Float64 references of the token embedding: gather and its gradient (scatter-add).
 * @module
 */

/** out[t, c] = weight[ids[t], c]. */
export function embeddingReference(
  weight: ArrayLike<number>,
  ids: ArrayLike<number>,
  d: number,
): Float64Array {
  const out = new Float64Array(ids.length * d);
  for (let t = 0; t < ids.length; t++) {
    for (let c = 0; c < d; c++) out[t * d + c] = weight[ids[t] * d + c];
  }
  return out;
}

/** dweight[v, c] = Σ_{t: ids[t] = v} dy[t, c]. */
export function embeddingBackwardReference(
  dy: ArrayLike<number>,
  ids: ArrayLike<number>,
  dims: { vocab: number; d: number },
): Float64Array {
  const { vocab, d } = dims;
  const dw = new Float64Array(vocab * d);
  for (let t = 0; t < ids.length; t++) {
    for (let c = 0; c < d; c++) dw[ids[t] * d + c] += dy[t * d + c];
  }
  return dw;
}
