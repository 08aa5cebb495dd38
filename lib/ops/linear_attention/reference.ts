/**
 * Float64 definition of causal linear attention with decay (docs LASP.md §1), straight from
 * the recurrence S_t = λ S_(t−1) + k_tᵀ v_t, o_t = q_t S_t (S_0 given or zero), and its exact
 * gradients by reverse-mode differentiation of that same recurrence, token by token. Nothing
 * here uses the chunked formulas, so tests against it are independent of the kernels' math.
 * @module
 */
import type { LaShape } from "./config.ts";

/** Inputs of the reference (row-major, as the op takes them). */
export interface LaReferenceInputs {
  q: ArrayLike<number>; // [B, H, N, dk]
  k: ArrayLike<number>; // [B, H, N, dk]
  v: ArrayLike<number>; // [B, H, N, dv]
  /** λ_h per head. */
  decay: readonly number[];
  shape: LaShape;
  initialState?: ArrayLike<number>; // [B, H, dk, dv]
}

/** Per (batch, head): offsets into the inputs and λ. */
function* heads(s: LaShape, decay: readonly number[]) {
  for (let b = 0; b < s.batch; b++) {
    for (let h = 0; h < s.heads; h++) {
      const bh = b * s.heads + h;
      yield {
        lambda: decay[h],
        qk: bh * s.length * s.dk,
        v: bh * s.length * s.dv,
        state: bh * s.dk * s.dv,
      };
    }
  }
}

/** The recurrence forward; with `keep`, every S_t (t = 1..N) of each head, for the backward. */
function run(inp: LaReferenceInputs, keep: boolean) {
  const { q, k, v, shape: s } = inp;
  const { length: n, dk, dv } = s;
  const o = new Float64Array(s.batch * s.heads * n * dv);
  const finalState = new Float64Array(s.batch * s.heads * dk * dv);
  const kept: Float64Array[] = [];
  for (const at of heads(s, inp.decay)) {
    const S = new Float64Array(dk * dv);
    if (inp.initialState) {
      for (let i = 0; i < dk * dv; i++) S[i] = inp.initialState[at.state + i];
    }
    const all = keep ? new Float64Array(n * dk * dv) : undefined;
    for (let t = 0; t < n; t++) {
      const qt = at.qk + t * dk, vt = at.v + t * dv;
      for (let i = 0; i < dk; i++) {
        const ki = k[qt + i];
        for (let j = 0; j < dv; j++) S[i * dv + j] = at.lambda * S[i * dv + j] + ki * v[vt + j];
      }
      for (let j = 0; j < dv; j++) {
        let acc = 0;
        for (let i = 0; i < dk; i++) acc += q[qt + i] * S[i * dv + j];
        o[vt + j] = acc;
      }
      all?.set(S, t * dk * dv);
    }
    finalState.set(S, at.state);
    if (all) kept.push(all);
  }
  return { o, finalState, kept };
}

/** o [B, H, N, dv] and the final state S_N [B, H, dk, dv], in float64. */
export function linearAttentionReference(
  inp: LaReferenceInputs,
): { o: Float64Array; finalState: Float64Array } {
  const { o, finalState } = run(inp, false);
  return { o, finalState };
}

/** Gradients of the loss Σ dO·o + Σ dFinalState·S_N with respect to q, k, v and S_0. */
export function linearAttentionBackwardReference(
  inp: LaReferenceInputs & { dO: ArrayLike<number>; dFinalState?: ArrayLike<number> },
): { dq: Float64Array; dk: Float64Array; dv: Float64Array; dInitialState: Float64Array } {
  const { q, k, v, dO, shape: s } = inp;
  const { length: n, dk, dv } = s;
  const { kept } = run(inp, true);
  const dq = new Float64Array(q.length), dkOut = new Float64Array(k.length);
  const dvOut = new Float64Array(v.length);
  const dInitialState = new Float64Array(s.batch * s.heads * dk * dv);
  let head = 0;
  for (const at of heads(s, inp.decay)) {
    const states = kept[head++];
    // G = ∂L/∂S_t, flowing backwards: from o_t = q_t S_t and S_(t+1) = λ S_t + ….
    const G = new Float64Array(dk * dv);
    if (inp.dFinalState) { for (let i = 0; i < dk * dv; i++) G[i] = inp.dFinalState[at.state + i]; }
    for (let t = n - 1; t >= 0; t--) {
      const qt = at.qk + t * dk, vt = at.v + t * dv, St = t * dk * dv;
      for (let i = 0; i < dk; i++) {
        // o_t = q_t S_t: ∂/∂q_t = S_t dO_tᵀ, ∂/∂S_t += q_tᵀ dO_t.
        let acc = 0;
        for (let j = 0; j < dv; j++) {
          acc += states[St + i * dv + j] * dO[vt + j];
          G[i * dv + j] += q[qt + i] * dO[vt + j];
        }
        dq[qt + i] = acc;
      }
      // S_t = λ S_(t−1) + k_tᵀ v_t: ∂/∂k_t = G v_t, ∂/∂v_t = k_t G.
      for (let i = 0; i < dk; i++) {
        let acc = 0;
        for (let j = 0; j < dv; j++) acc += G[i * dv + j] * v[vt + j];
        dkOut[qt + i] = acc;
      }
      for (let j = 0; j < dv; j++) {
        let acc = 0;
        for (let i = 0; i < dk; i++) acc += k[qt + i] * G[i * dv + j];
        dvOut[vt + j] = acc;
      }
      for (let i = 0; i < dk * dv; i++) G[i] *= at.lambda; // ∂L/∂S_(t−1)
    }
    dInitialState.set(G, at.state);
  }
  return { dq, dk: dkOut, dv: dvOut, dInitialState };
}
