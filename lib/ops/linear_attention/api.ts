/**
 * The public linear-attention entry points: the same call takes GPU tensors (outputs stay on
 * the GPU) or row-major host arrays (uploaded, computed, and read back in one batched readback).
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import { downloadTensors, type Tensor, uploadTensor } from "../../gpu/tensor.ts";
import type { IoType } from "../../../shaders/linear_attention/tiles.ts";
import {
  checkHost,
  type Decay,
  type LaShape,
  laShapes,
  type LaTuning,
  validateShape,
} from "./config.ts";
import { laForward } from "./forward.ts";
import { laBackward } from "./backward.ts";

/** A tensor argument: a GPU tensor, or a row-major host array. */
export type LaArray = Tensor | Float32Array;

/** Inputs of {@linkcode linearAttention}. */
export interface LinearAttentionInputs<A extends LaArray> {
  /** [B, H, N, dk] */
  q: A;
  /** [B, H, N, dk] */
  k: A;
  /** [B, H, N, dv] */
  v: A;
  /** λ_h ∈ (0, 1] per head, or one value for all heads (1 = no decay). */
  decay: Decay;
  /** Sizes; with tensors it must agree with their shapes (and may be left out). */
  shape?: LaShape;
  /** S_0 [B, H, dk, dv]; zero when absent. */
  initialState?: A;
  /** Host arrays only: storage type on the GPU ("f16" halves memory; f32 accumulation). */
  dtype?: IoType;
  /** Kernel tiling knobs (benchmarks); defaults by shape. */
  tuning?: LaTuning;
}

/** Inputs of {@linkcode linearAttentionBackward}. */
export interface LinearAttentionBackwardInputs<A extends LaArray> extends LinearAttentionInputs<A> {
  /** [B, H, N, dv] */
  dO: A;
  /** ∂L/∂S_N [B, H, dk, dv]; zero when absent. */
  dFinalState?: A;
}

function isHost(x: LaArray): x is Float32Array {
  return x instanceof Float32Array;
}

/** Which of {@linkcode laShapes} each array argument has, and whether it is stored as the io type. */
const ARG_LAYOUT = {
  q: ["qk", true],
  k: ["qk", true],
  v: ["v", true],
  dO: ["v", true],
  initialState: ["state", false],
  dFinalState: ["state", false],
} as const;
type ArgName = keyof typeof ARG_LAYOUT;
type Args = Partial<Record<ArgName, LaArray>>;

/** Checks that arguments are all tensors or all host arrays, and host arrays against the shape. */
function hostMode(args: Args, shape: LaShape | undefined): boolean {
  const given = Object.entries(args).filter((e): e is [string, LaArray] => e[1] !== undefined);
  const host = isHost(given[0][1]);
  for (const [name, a] of given) {
    if (isHost(a) !== host) {
      throw new Error(
        `linear attention: ${name} is a ${isHost(a) ? "Float32Array" : "Tensor"} but ${
          given[0][0]
        } is not: pass all tensors or all Float32Arrays`,
      );
    }
  }
  if (host) {
    if (!shape) {
      throw new Error("linear attention: host arrays need shape { batch, heads, length, dk, dv }");
    }
    const shapes = laShapes(shape);
    for (const [name, a] of given) {
      checkHost(name, a as Float32Array, shapes[ARG_LAYOUT[name as ArgName][0]]);
    }
  }
  return host;
}

/** Checks that an explicit shape agrees with the tensors' shapes. */
function checkShapeOption(shape: LaShape | undefined, q: Tensor, v: Tensor): void {
  if (!shape) return;
  validateShape(shape);
  const s = laShapes(shape);
  const agree = (t: Tensor, e: number[]) =>
    t.shape.length === 4 && t.shape.every((d, i) => d === e[i]);
  if (!agree(q, s.qk) || !agree(v, s.v)) {
    throw new Error(
      `linear attention: shape ${JSON.stringify(shape)} disagrees with q [${
        q.shape.join(", ")
      }], v [${v.shape.join(", ")}]`,
    );
  }
}

/** Host arrays to upload: name → [array or absent, shape, dtype]. */
type Uploads = Record<string, [LaArray | undefined, number[], IoType]>;

/** The uploads of `args` for `shape`, q/k/v/dO stored as `io`, states as f32. */
function uploadsOf(args: Args, shape: LaShape, io: IoType): Uploads {
  const shapes = laShapes(shape);
  const uploads: Uploads = {};
  for (const [name, a] of Object.entries(args)) {
    const [kind, isIo] = ARG_LAYOUT[name as ArgName];
    uploads[name] = [a, shapes[kind], isIo ? io : "f32"];
  }
  return uploads;
}

/**
 * Uploads host arrays, records `op` on the tensors, and reads every output back in one
 * batched readback (as Float32Arrays, whatever the storage type).
 */
async function viaHost<K extends string>(
  gpu: Gpu,
  uploads: Uploads,
  op: (t: Record<string, Tensor | undefined>) => Promise<Record<K, Tensor>>,
): Promise<Record<K, Float32Array>> {
  const t: Record<string, Tensor | undefined> = {};
  for (const [name, [a, dims, dtype]] of Object.entries(uploads)) {
    t[name] = a ? uploadTensor(gpu, a as Float32Array, dims, dtype) : undefined;
  }
  try {
    const out = await op(t);
    const names = Object.keys(out) as K[];
    const data = await downloadTensors(gpu, names.map((n) => out[n]));
    for (const n of names) out[n].release();
    const result = {} as Record<K, Float32Array>;
    names.forEach((n, i) => {
      const a = data[i];
      result[n] = a instanceof Float32Array ? a : Float32Array.from(a as ArrayLike<number>);
    });
    return result;
  } finally {
    for (const x of Object.values(t)) x?.release();
  }
}

/**
 * Causal linear attention with per-head decay: o_t = Σ_{s≤t} λ^(t−s) (q_t·k_s) v_s + λ^t q_t S_0,
 * and the final state S_N. Tensors in → tensors out; Float32Arrays in → Float32Arrays out.
 */
export async function linearAttention<A extends LaArray>(
  gpu: Gpu,
  inputs: LinearAttentionInputs<A>,
): Promise<{ o: A; finalState: A }> {
  const { q, k, v, initialState, shape, decay, tuning } = inputs;
  if (shape) validateShape(shape);
  const args = { q, k, v, initialState };
  const host = hostMode(args, shape);
  type Out = { o: A; finalState: A };
  if (!host) {
    checkShapeOption(shape, q as Tensor, v as Tensor);
    const t = inputs as LinearAttentionInputs<Tensor>;
    return await laForward(gpu, { ...t, decay, tuning }) as Out;
  }
  return await viaHost(
    gpu,
    uploadsOf(args, shape!, inputs.dtype ?? "f32"),
    (t) =>
      laForward(gpu, { q: t.q!, k: t.k!, v: t.v!, initialState: t.initialState, decay, tuning }),
  ) as Out;
}

/**
 * Gradients of {@linkcode linearAttention} with respect to q, k, v and the initial state,
 * given dO (and optionally the gradient of the final state).
 */
export async function linearAttentionBackward<A extends LaArray>(
  gpu: Gpu,
  inputs: LinearAttentionBackwardInputs<A>,
): Promise<{ dq: A; dk: A; dv: A; dInitialState: A }> {
  const { q, k, v, initialState, dO, dFinalState, shape, decay, tuning } = inputs;
  if (shape) validateShape(shape);
  const args = { q, k, v, dO, initialState, dFinalState };
  const host = hostMode(args, shape);
  type Out = { dq: A; dk: A; dv: A; dInitialState: A };
  if (!host) {
    checkShapeOption(shape, q as Tensor, v as Tensor);
    const t = inputs as LinearAttentionBackwardInputs<Tensor>;
    return await laBackward(gpu, { ...t, decay, tuning }) as Out;
  }
  return await viaHost(gpu, uploadsOf(args, shape!, inputs.dtype ?? "f32"), (t) =>
    laBackward(gpu, {
      q: t.q!,
      k: t.k!,
      v: t.v!,
      dO: t.dO!,
      initialState: t.initialState,
      dFinalState: t.dFinalState,
      decay,
      tuning,
    })) as Out;
}
