/**
 * Float64 references of the optimizer kernels: global gradient norm with clipping, and one
 * AdamW step (PyTorch's torch.optim.AdamW semantics: decoupled weight decay, bias correction).
 * @module
 */

/** `[norm, scale]` with norm = sqrt(Σ over all tensors of g²), scale = min(1, max/(norm+1e-6)). */
export function gradNormReference(grads: ArrayLike<number>[], maxNorm: number): [number, number] {
  let ss = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) ss += g[i] * g[i];
  const norm = Math.sqrt(ss);
  return [norm, maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1];
}

/** AdamW hyperparameters of one step. */
export interface AdamwHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count (for bias correction). */
  step: number;
  /** Gradient multiplier (the clip scale). Default 1. */
  gradScale?: number;
}

/** One AdamW step in float64; returns the new param, m and v. */
export function adamwReference(
  state: {
    param: ArrayLike<number>;
    grad: ArrayLike<number>;
    m: ArrayLike<number>;
    v: ArrayLike<number>;
  },
  h: AdamwHyper,
): { param: Float64Array; m: Float64Array; v: Float64Array } {
  const n = state.param.length;
  const param = new Float64Array(n), m = new Float64Array(n), v = new Float64Array(n);
  const bc1 = 1 - h.beta1 ** h.step, bc2 = 1 - h.beta2 ** h.step;
  const scale = h.gradScale ?? 1;
  for (let i = 0; i < n; i++) {
    const g = state.grad[i] * scale;
    m[i] = h.beta1 * state.m[i] + (1 - h.beta1) * g;
    v[i] = h.beta2 * state.v[i] + (1 - h.beta2) * g * g;
    param[i] = state.param[i] * (1 - h.lr * h.weightDecay) -
      (h.lr * (m[i] / bc1)) / (Math.sqrt(v[i] / bc2) + h.eps);
  }
  return { param, m, v };
}
