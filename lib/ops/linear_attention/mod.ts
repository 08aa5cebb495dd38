/**
 * Fused causal linear attention with per-head decay, forward and backward, with initial and
 * final states (docs LASP.md §1–3). `linearAttention` / `linearAttentionBackward` take GPU
 * tensors or host arrays; `laForward`, `laBackward`, `laLocalState`, `laLocalStateGrad` and
 * `laPropagateState` are the tensor-only pieces the LASP sequence-parallel layer is built from.
 * @module
 */
export {
  type LaArray,
  linearAttention,
  linearAttentionBackward,
  type LinearAttentionBackwardInputs,
  type LinearAttentionInputs,
} from "./api.ts";
export {
  laForward,
  type LaForwardInputs,
  type LaForwardOutputs,
  laLocalState,
  type LaLocalStateInputs,
  type LaPropagateInputs,
  laPropagateState,
} from "./forward.ts";
export {
  laBackward,
  type LaBackwardInputs,
  type LaBackwardOutputs,
  laLocalStateGrad,
  type LaLocalStateGradInputs,
} from "./backward.ts";
export { type Decay, type LaShape, type LaTuning, MAX_HEAD_DIM } from "./config.ts";
export type { StateTile } from "../../../shaders/linear_attention/chunk_state.ts";
export type { IoType } from "../../../shaders/linear_attention/tiles.ts";
export {
  type LaReferenceInputs,
  linearAttentionBackwardReference,
  linearAttentionReference,
} from "./reference.ts";
