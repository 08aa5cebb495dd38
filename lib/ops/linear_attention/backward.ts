/**
 * Backward linear attention on GPU tensors (docs LASP.md §2), and the local state-gradient
 * contribution sequence parallelism needs (§3).
 *
 * Per segment, last segment first: recompute S_(c−1) (`la_fwd_chunk_states` +
 * `la_fwd_state_scan`), form G_c (`la_bwd_chunk_dstates` + `la_bwd_dstate_scan`, chunks and
 * parts in reverse, carrying the running gradient from segment to segment; G of the last chunk
 * = dFinalState), then the fused `la_bwd_dq`, `la_bwd_dk`, `la_bwd_dv` for every chunk in
 * parallel. With more than one segment, a first pass over the states (part totals only)
 * leaves the state at each segment start.
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import { copyTensor, emptyTensor, type Tensor } from "../../gpu/tensor.ts";
import { checkTensor, type Decay, ioTypeOf, laShapes, type LaTuning, shapeOf } from "./config.ts";
import {
  dispatchChunkStates,
  dispatchOutput,
  dispatchScan,
  makePlan,
  releasePlan,
  releaseStates,
  segment,
  stateBuffers,
} from "./kernels.ts";

/** Inputs of {@linkcode laBackward}. */
export interface LaBackwardInputs {
  /** [B, H, N, dk] f32 or f16 */
  q: Tensor;
  /** [B, H, N, dk] */
  k: Tensor;
  /** [B, H, N, dv] */
  v: Tensor;
  /** λ_h ∈ (0, 1] per head, or one value for all heads. */
  decay: Decay;
  /** S_0 [B, H, dk, dv] f32 of the forward; zero when absent. */
  initialState?: Tensor;
  /** [B, H, N, dv], dtype of q */
  dO: Tensor;
  /** ∂L/∂S_N [B, H, dk, dv] f32; zero when absent. */
  dFinalState?: Tensor;
  /** Kernel tiling knobs (benchmarks); defaults by shape. */
  tuning?: LaTuning;
}

/** Outputs of {@linkcode laBackward}. */
export interface LaBackwardOutputs {
  /** [B, H, N, dk], dtype of q */
  dq: Tensor;
  /** [B, H, N, dk] */
  dk: Tensor;
  /** [B, H, N, dv] */
  dv: Tensor;
  /** [B, H, dk, dv] f32 */
  dInitialState: Tensor;
}

/** Gradients of {@linkcode laForward}'s o and finalState with respect to q, k, v and S_0. */
export async function laBackward(gpu: Gpu, inputs: LaBackwardInputs): Promise<LaBackwardOutputs> {
  const { q, k, v, dO, initialState, dFinalState } = inputs;
  const shape = shapeOf(q, v);
  const io = ioTypeOf([["q", q], ["k", k], ["v", v], ["dO", dO]]);
  const plan = makePlan(gpu, shape, io, inputs.decay, inputs.tuning);
  const shapes = laShapes(shape);
  checkTensor("q", q, shapes.qk, [io]);
  checkTensor("k", k, shapes.qk, [io]);
  checkTensor("v", v, shapes.v, [io]);
  checkTensor("dO", dO, shapes.v, [io]);
  if (initialState) checkTensor("initialState", initialState, shapes.state, ["f32"]);
  if (dFinalState) checkTensor("dFinalState", dFinalState, shapes.state, ["f32"]);
  const size = shape.batch * shape.heads * shape.dk * shape.dv;
  const dq = emptyTensor(gpu, shapes.qk, io);
  const dk = emptyTensor(gpu, shapes.qk, io);
  const dv = emptyTensor(gpu, shapes.v, io);
  const dInitialState = emptyTensor(gpu, shapes.state); // running G, ends as G_0
  if (dFinalState) copyTensor(gpu, dFinalState, dInitialState);
  const s = stateBuffers(plan), g = stateBuffers(plan);
  // starts[i] = state before segment i (i = 0: S_0).
  const starts = emptyTensor(gpu, [plan.segments, ...shapes.state]);
  if (initialState) copyTensor(gpu, initialState, starts.rows(0, 1));
  for (let i = 0; i + 1 < plan.segments; i++) {
    const seg = segment(plan, i);
    await dispatchChunkStates(plan, "fwd", { a: k, b: v, states: s, writePrefix: false }, seg);
    await dispatchScan(plan, {
      reverse: false,
      buf: s.parts,
      carry: starts,
      hasInit: initialState !== undefined || i > 0,
      writePrefix: false,
      writeFinal: true,
      inOffset: i * size,
      outOffset: (i + 1) * size,
    }, seg);
  }
  for (let i = plan.segments - 1; i >= 0; i--) {
    const seg = segment(plan, i);
    await dispatchChunkStates(plan, "fwd", { a: k, b: v, states: s, writePrefix: true }, seg);
    await dispatchScan(plan, {
      reverse: false,
      buf: s.parts,
      carry: starts,
      hasInit: initialState !== undefined || i > 0,
      writePrefix: true,
      writeFinal: false,
      inOffset: i * size,
    }, seg);
    await dispatchChunkStates(plan, "bwd", { a: q, b: dO, states: g, writePrefix: true }, seg);
    await dispatchScan(plan, {
      reverse: true,
      buf: g.parts,
      carry: dInitialState,
      hasInit: dFinalState !== undefined || i < plan.segments - 1,
      writePrefix: true,
      writeFinal: true,
    }, seg);
    await dispatchOutput(plan, "bwd_dq", { xl: dO, xr: v, a3: dO, b1: k, states: s, out: dq }, seg);
    await dispatchOutput(plan, "bwd_dk", { xl: dO, xr: v, a3: v, b1: q, states: g, out: dk }, seg);
    await dispatchOutput(plan, "bwd_dv", { xl: q, xr: k, a3: k, b1: dO, states: g, out: dv }, seg);
  }
  releaseStates(s);
  releaseStates(g);
  starts.release();
  releasePlan(plan);
  return { dq, dk, dv, dInitialState };
}

/** Inputs of {@linkcode laLocalStateGrad}. */
export interface LaLocalStateGradInputs {
  /** [B, H, N, dk] */
  q: Tensor;
  /** [B, H, N, dv] */
  dO: Tensor;
  /** λ_h ∈ (0, 1] per head, or one value for all heads. */
  decay: Decay;
  /** Kernel tiling knobs (benchmarks); defaults by shape. */
  tuning?: LaTuning;
}

/**
 * The block's local state-gradient contribution D = Σ_t λ^t q_tᵀ dO_t [B, H, dk, dv] f32:
 * the gradient of the initial state with a zero dFinalState, without computing dq, dk, dv.
 * A LASP rank sends λ^N G_next + D ({@linkcode laPropagateState}) as soon as G_next arrives.
 */
export async function laLocalStateGrad(gpu: Gpu, inputs: LaLocalStateGradInputs): Promise<Tensor> {
  const { q, dO } = inputs;
  const shape = shapeOf(q, dO);
  const io = ioTypeOf([["q", q], ["dO", dO]]);
  const plan = makePlan(gpu, shape, io, inputs.decay, inputs.tuning);
  const shapes = laShapes(shape);
  checkTensor("q", q, shapes.qk, [io]);
  checkTensor("dO", dO, shapes.v, [io]);
  const grad = emptyTensor(gpu, shapes.state);
  const g = stateBuffers(plan, false);
  for (let i = plan.segments - 1; i >= 0; i--) {
    const seg = segment(plan, i);
    await dispatchChunkStates(plan, "bwd", { a: q, b: dO, states: g, writePrefix: false }, seg);
    await dispatchScan(plan, {
      reverse: true,
      buf: g.parts,
      carry: grad,
      hasInit: i < plan.segments - 1,
      writePrefix: false,
      writeFinal: true,
    }, seg);
  }
  releaseStates(g);
  releasePlan(plan);
  return grad;
}
