/**
 * Forward linear attention on GPU tensors, and the pieces sequence parallelism needs
 * (docs LASP.md §3): the local state contribution of a block alone, and the propagation of
 * a state across a block.
 *
 * Per segment: `la_fwd_chunk_states` (all parts in parallel, each walking its chunks: the
 * part-local S_(c−1) of every chunk and the part's total) → `la_fwd_state_scan` (over parts:
 * each part's incoming state, carrying the running state from segment to segment) →
 * `la_fwd_output` (O_c for every chunk in parallel; S_(c−1) = local prefix + decayed part state).
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import { copyTensor, emptyTensor, type Tensor } from "../../gpu/tensor.ts";
import { checkTensor, type Decay, ioTypeOf, laShapes, type LaTuning, shapeOf } from "./config.ts";
import {
  dispatchChunkStates,
  dispatchOutput,
  dispatchScan,
  type LaPlan,
  makePlan,
  releasePlan,
  releaseStates,
  scanSteps,
  type Segment,
  segment,
  type StateBuffers,
  stateBuffers,
} from "./kernels.ts";

/** Inputs of {@linkcode laForward}. */
export interface LaForwardInputs {
  /** [B, H, N, dk] f32 or f16 */
  q: Tensor;
  /** [B, H, N, dk] */
  k: Tensor;
  /** [B, H, N, dv] */
  v: Tensor;
  /** λ_h ∈ (0, 1] per head, or one value for all heads. */
  decay: Decay;
  /** S_0 [B, H, dk, dv] f32; zero when absent. */
  initialState?: Tensor;
  /** Kernel tiling knobs (benchmarks); defaults by shape. */
  tuning?: LaTuning;
}

/** Outputs of {@linkcode laForward}. */
export interface LaForwardOutputs {
  /** [B, H, N, dv], dtype of q */
  o: Tensor;
  /** [B, H, dk, dv] f32 */
  finalState: Tensor;
}

/**
 * Records the forward state pass over every segment: chunk states (part-local prefixes and
 * part totals), then the scan over parts, which leaves each part's incoming state in
 * `states.parts` and the running state in `carry`; `perSegment` then consumes the segment.
 */
async function statePass(
  plan: LaPlan,
  k: Tensor,
  v: Tensor,
  o: {
    states: StateBuffers;
    carry: Tensor;
    hasInit: boolean;
    perSegment?: (seg: Segment) => Promise<void>;
  },
): Promise<void> {
  const prefix = o.perSegment !== undefined;
  for (let i = 0; i < plan.segments; i++) {
    const seg = segment(plan, i);
    await dispatchChunkStates(
      plan,
      "fwd",
      { a: k, b: v, states: o.states, writePrefix: prefix },
      seg,
    );
    await dispatchScan(plan, {
      reverse: false,
      buf: o.states.parts,
      carry: o.carry,
      hasInit: o.hasInit || i > 0,
      writePrefix: prefix,
      writeFinal: true,
    }, seg);
    await o.perSegment?.(seg);
  }
}

/**
 * o_t = Σ_{s≤t} λ^(t−s) (q_t·k_s) v_s + λ^t q_t S_0 and the final state S_N, on tensors
 * (nothing is read back). f16 q, k, v give an f16 o (f32 accumulation); states are f32.
 */
export async function laForward(gpu: Gpu, inputs: LaForwardInputs): Promise<LaForwardOutputs> {
  const { q, k, v, initialState } = inputs;
  const shape = shapeOf(q, v);
  const io = ioTypeOf([["q", q], ["k", k], ["v", v]]);
  const plan = makePlan(gpu, shape, io, inputs.decay, inputs.tuning);
  const shapes = laShapes(shape);
  checkTensor("q", q, shapes.qk, [io]);
  checkTensor("k", k, shapes.qk, [io]);
  checkTensor("v", v, shapes.v, [io]);
  if (initialState) checkTensor("initialState", initialState, shapes.state, ["f32"]);
  const o = emptyTensor(gpu, shapes.v, io);
  const finalState = emptyTensor(gpu, shapes.state);
  if (initialState) copyTensor(gpu, initialState, finalState);
  const states = stateBuffers(plan);
  await statePass(plan, k, v, {
    states,
    carry: finalState,
    hasInit: initialState !== undefined,
    perSegment: (seg) =>
      dispatchOutput(plan, "fwd_o", { xl: q, xr: k, a3: q, b1: v, states, out: o }, seg),
  });
  releaseStates(states);
  releasePlan(plan);
  return { o, finalState };
}

/** Inputs of {@linkcode laLocalState}. */
export interface LaLocalStateInputs {
  /** [B, H, N, dk] */
  k: Tensor;
  /** [B, H, N, dv] */
  v: Tensor;
  /** λ_h ∈ (0, 1] per head, or one value for all heads. */
  decay: Decay;
  /** Kernel tiling knobs (benchmarks); defaults by shape. */
  tuning?: LaTuning;
}

/**
 * The block's local state contribution L = Σ_t λ^(N−t) k_tᵀ v_t [B, H, dk, dv] f32: the final
 * state with a zero initial state, without computing outputs. With it a LASP rank can send
 * λ^N S_prev + L ({@linkcode laPropagateState}) as soon as S_prev arrives.
 */
export async function laLocalState(gpu: Gpu, inputs: LaLocalStateInputs): Promise<Tensor> {
  const { k, v } = inputs;
  const shape = shapeOf(k, v);
  const io = ioTypeOf([["k", k], ["v", v]]);
  const plan = makePlan(gpu, shape, io, inputs.decay, inputs.tuning);
  const shapes = laShapes(shape);
  checkTensor("k", k, shapes.qk, [io]);
  checkTensor("v", v, shapes.v, [io]);
  const state = emptyTensor(gpu, shapes.state);
  const states = stateBuffers(plan, false);
  await statePass(plan, k, v, { states, carry: state, hasInit: false });
  releaseStates(states);
  releasePlan(plan);
  return state;
}

/** Inputs of {@linkcode laPropagateState}. */
export interface LaPropagateInputs {
  /** The incoming state [B, H, dk, dv] f32 (S_prev forward, G_next backward). */
  state: Tensor;
  /** The block's local contribution [B, H, dk, dv] f32 (L forward, D backward). */
  local: Tensor;
  /** λ_h ∈ (0, 1] per head, or one value for all heads. */
  decay: Decay;
  /** Tokens of the block. */
  length: number;
}

/**
 * λ_h^length · state + local, a new [B, H, dk, dv] tensor: one hop of the LASP state chain,
 * forward (S_t = λ^n S_(t−1) + L_t) and backward (G_(t−1) = λ^n G_t + D_t) alike.
 */
export async function laPropagateState(gpu: Gpu, inputs: LaPropagateInputs): Promise<Tensor> {
  const { state, local, length } = inputs;
  if (state.shape.length !== 4) {
    throw new Error(
      `linear attention: state must be [batch, heads, dk, dv], got [${state.shape.join(", ")}]`,
    );
  }
  const [batch, heads, dk, dv] = state.shape;
  if (!Number.isInteger(length) || length < 1) {
    throw new Error(`linear attention: length = ${length} must be a positive integer`);
  }
  const plan = makePlan(gpu, { batch, heads, length, dk, dv }, "f32", inputs.decay);
  checkTensor("local", local, state.shape, ["f32"]);
  checkTensor("state", state, state.shape, ["f32"]);
  const out = emptyTensor(gpu, state.shape);
  copyTensor(gpu, state, out);
  // One scan step spanning the block: out = λ^length · out + local.
  await scanSteps(
    plan,
    { reverse: false, buf: local, carry: out, hasInit: true, writePrefix: false, writeFinal: true },
    { first: 0, count: 1, stride: 1, tokens: length, seqLen: length },
  );
  releasePlan(plan);
  return out;
}
