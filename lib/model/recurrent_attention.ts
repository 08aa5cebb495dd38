/**
 * Linear attention as the RNN it is at inference (docs LASP.md §1): each layer carries its
 * state S [B, H, dk, dv] from call to call, so a sequence can be fed in pieces of any length —
 * a prompt, then one token at a time. A call over n tokens is the fused kernel with the
 * layer's previous final state as initial state (none on the first call), which leaves
 * S ← λⁿ·S + Σ_s λ^(n−s) k_sᵀ v_s for the next call: the outputs are those of the whole
 * sequence so far computed in one call, at a cost linear in the new tokens. Inference only
 * (no backward); {@linkcode RecurrentAttention.reset} starts a new sequence.
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { AttentionLayer, LaspBackwardInputs, LaspForwardInputs } from "../lasp/attention.ts";
import { laForward, type LaTuning } from "../ops/linear_attention/mod.ts";

/** Options of {@linkcode RecurrentAttention}. */
export interface RecurrentAttentionOptions {
  /** Kernel tuning passed to the fused kernel. */
  tuning?: LaTuning;
}

/** Linear attention over a sequence fed in pieces; one object serves every layer. */
export class RecurrentAttention implements AttentionLayer {
  /** Per layer: the state after the tokens fed so far, [B, H, dk, dv]. */
  #states = new Map<number, Tensor>();
  #lengths = new Map<number, number>();

  /** Empty states: the next call of each layer starts a sequence. */
  constructor(readonly options: RecurrentAttentionOptions = {}) {}

  /** Tokens fed so far to `layer` (0 before its first call and after a reset). */
  length(layer = 0): number {
    return this.#lengths.get(layer) ?? 0;
  }

  /** o of the given tokens, continuing the layer's sequence; keeps the new state. */
  async forward(gpu: Gpu, inputs: LaspForwardInputs): Promise<{ o: Tensor }> {
    const { q, k, v, decay, shape, layer } = inputs;
    if (inputs.needsGrad ?? true) {
      throw new Error(
        `RecurrentAttention layer ${layer}: needsGrad must be false (inference only; train with LaspAttention)`,
      );
    }
    if (!Number.isInteger(layer) || layer < 0) {
      throw new Error(`Invalid layer ${layer}: must be an integer ≥ 0`);
    }
    if (q.shape[2] !== shape.length) {
      throw new Error(
        `RecurrentAttention: q has ${q.shape[2]} tokens but shape.length is ${shape.length}`,
      );
    }
    const previous = this.#states.get(layer);
    const want = [shape.batch, shape.heads, shape.dk, shape.dv];
    if (previous && previous.shape.some((d, i) => d !== want[i])) {
      throw new Error(
        `RecurrentAttention layer ${layer}: the carried state [${
          previous.shape.join(", ")
        }] does not fit [B, H, dk, dv] = [${want.join(", ")}] (reset() between sequences)`,
      );
    }
    const { o, finalState } = await laForward(gpu, {
      q,
      k,
      v,
      decay,
      initialState: previous,
      tuning: this.options.tuning,
    });
    previous?.release(); // returns to the pool once the recorded kernel is submitted
    this.#states.set(layer, finalState);
    this.#lengths.set(layer, this.length(layer) + shape.length);
    return { o };
  }

  /** Always throws: decoding has no backward. */
  backward(
    _gpu: Gpu,
    inputs: LaspBackwardInputs,
  ): Promise<{ dq: Tensor; dk: Tensor; dv: Tensor }> {
    return Promise.reject(
      new Error(`RecurrentAttention layer ${inputs.layer}: no backward (inference only)`),
    );
  }

  /** Nothing is kept for a backward; the carried states stay (see {@linkcode reset}). */
  clear(): void {}

  /** Frees every layer's state: the next calls start a new sequence. */
  reset(): void {
    for (const state of this.#states.values()) state.release();
    this.#states.clear();
    this.#lengths.clear();
  }
}
