/**
 * Host-side arithmetic of the LASP state chain on [B, H, dk, dv] states (float64, rounded
 * once): one hop λ^n·S + L (ring), and the prefix/suffix combinations of gathered local
 * states (LASP-2). These are B·H·dk·dv numbers, independent of the sequence length: cheaper
 * on the host than a GPU round trip, and the states are on the host anyway to be sent.
 * @module
 */
import type { Decay } from "../ops/linear_attention/mod.ts";

/** Sizes of a state: batch, heads, and dk·dv values per head. */
export interface StateDims {
  batch: number;
  heads: number;
  /** dk · dv. */
  perHead: number;
}

/** λ_h per head from a decay argument, checked to lie in (0, 1]. */
export function decayPerHead(decay: Decay, heads: number): Float64Array {
  const values = typeof decay === "number" ? new Array(heads).fill(decay) : Array.from(decay);
  if (values.length !== heads) {
    throw new Error(
      `LASP: decay has ${values.length} values, expected one per head (${heads}) or a single number`,
    );
  }
  values.forEach((lambda, h) => {
    if (!(typeof lambda === "number" && lambda > 0 && lambda <= 1)) {
      throw new Error(`LASP: decay[${h}] = ${lambda} is outside (0, 1]`);
    }
  });
  return Float64Array.from(values);
}

/** acc ← λ_h^n · acc + x, per head (x may be undefined: acc ← λ^n acc). */
function step(
  acc: Float64Array,
  x: Float32Array | undefined,
  lambdas: Float64Array,
  n: number,
  dims: StateDims,
): void {
  const { batch, heads, perHead } = dims;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const scale = lambdas[h] ** n, base = (b * heads + h) * perHead;
      for (let i = base; i < base + perHead; i++) acc[i] = scale * acc[i] + (x ? x[i] : 0);
    }
  }
}

function checkState(name: string, s: Float32Array, dims: StateDims, count = 1): void {
  const expected = dims.batch * dims.heads * dims.perHead * count;
  if (s.length !== expected) {
    throw new Error(`LASP: ${name} has ${s.length} values, expected ${expected}`);
  }
}

/** One hop of the chain: λ_h^n · state + local (S_t from S_(t−1), or G_(t−1) from G_t). */
export function propagateState(
  state: Float32Array,
  local: Float32Array,
  lambdas: Float64Array,
  n: number,
  dims: StateDims,
): Float32Array {
  checkState("state", state, dims);
  checkState("local state", local, dims);
  const acc = Float64Array.from(state);
  step(acc, local, lambdas, n, dims);
  return Float32Array.from(acc);
}

/**
 * S_(t−1) = Σ_(u<t) λ^((t−1−u)·n) L_u from the gathered local states [T, B, H, dk, dv];
 * undefined for t = 0 (no incoming state).
 */
export function prefixState(
  gathered: Float32Array,
  t: number,
  lambdas: Float64Array,
  n: number,
  dims: StateDims,
): Float32Array | undefined {
  if (t === 0) return undefined;
  const size = dims.batch * dims.heads * dims.perHead;
  checkState("gathered states", gathered, dims, gathered.length / size);
  const acc = new Float64Array(size);
  for (let u = 0; u < t; u++) {
    step(acc, gathered.subarray(u * size, (u + 1) * size), lambdas, n, dims);
  }
  return Float32Array.from(acc);
}

/**
 * G_t = Σ_(u>t) λ^((u−t−1)·n) D_u from the gathered local state gradients [T, B, H, dk, dv];
 * undefined for the last rank (the final state's gradient is zero).
 */
export function suffixGrad(
  gathered: Float32Array,
  t: number,
  lambdas: Float64Array,
  n: number,
  dims: StateDims,
): Float32Array | undefined {
  const size = dims.batch * dims.heads * dims.perHead;
  const ranks = gathered.length / size;
  checkState("gathered state gradients", gathered, dims, ranks);
  if (t === ranks - 1) return undefined;
  const acc = new Float64Array(size);
  for (let u = ranks - 1; u > t; u--) {
    step(acc, gathered.subarray(u * size, (u + 1) * size), lambdas, n, dims);
  }
  return Float32Array.from(acc);
}
