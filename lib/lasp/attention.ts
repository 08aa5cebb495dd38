/**
 * LASP: linear attention with the sequence split over the T ranks of a sequence-parallel
 * group (LASP.md §3). Each rank runs the fused kernel on its N/T tokens; the only thing that
 * travels is one [B, H, dk, dv] state per layer and direction.
 *
 * - `mode: "ring"` (LASP): forward, rank t receives S_(t−1) from rank t−1 and sends S_t on;
 *   backward, it receives G_t from rank t+1 and sends G_(t−1) back. With `overlap` (default)
 *   a rank first computes its local contribution (L_t = Σ λ^(n−s) k_sᵀ v_s, resp.
 *   D_t = Σ λ^s q_sᵀ dO_s), passes λ^n·S_(t−1) + L_t on the moment S_(t−1) arrives, and only
 *   then computes its outputs: each hop of the chain costs one small addition, not a kernel.
 * - `mode: "allgather"` (LASP-2): one all-gather of the local states per layer and direction;
 *   each rank combines S_(t−1) = Σ_(u<t) λ^((t−1−u)·n) L_u (and the mirror sum for G) itself.
 *
 * The received S_(t−1) is kept from forward to backward (KV state caching), so the backward
 * pass never reruns the forward chain.
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { downloadTensors, type Tensor, uploadTensor } from "../gpu/tensor.ts";
import type { Communicator } from "../dist/communicator.ts";
import {
  DIR_BACKWARD,
  DIR_FORWARD,
  DIR_GATHER_BACKWARD,
  DIR_GATHER_FORWARD,
  type Tag,
} from "../dist/transport.ts";
import {
  type Decay,
  laBackward,
  laForward,
  laLocalState,
  laLocalStateGrad,
  type LaShape,
  type LaTuning,
} from "../ops/linear_attention/mod.ts";
import {
  decayPerHead,
  prefixState,
  propagateState,
  type StateDims,
  suffixGrad,
} from "./state_chain.ts";

/** How ranks exchange states: LASP's ring or LASP-2's all-gather. */
export type LaspMode = "ring" | "allgather";

/** Options of {@linkcode LaspAttention}. */
export interface LaspAttentionOptions {
  /** Default "ring". */
  mode?: LaspMode;
  /** Ring only: pass the state on before computing outputs (see module doc). Default true. */
  overlap?: boolean;
  /** Kernel tuning passed to the fused kernels. */
  tuning?: LaTuning;
  /** Receive timeout, ms; default: the communicator's. */
  timeoutMs?: number;
}

/** Inputs of {@linkcode LaspAttention.forward}: this rank's slice of the sequence. */
export interface LaspForwardInputs {
  /** Queries [B, H, n, dk] of this rank's n = N/T tokens; kept alive until backward. */
  q: Tensor;
  /** Keys [B, H, n, dk]. */
  k: Tensor;
  /** Values [B, H, n, dv]. */
  v: Tensor;
  /** λ_h ∈ (0, 1] per head or one value (1 = no decay). */
  decay: Decay;
  /** The LOCAL shape (length = N/T). */
  shape: LaShape;
  /** Layer index: tags the messages and keys the state kept for backward. */
  layer: number;
  /** Keep what backward needs (default true; false for evaluation). */
  needsGrad?: boolean;
  /**
   * Activation recomputation: `"first"` marks a forward (without gradients) that will be rerun
   * before its backward, so the incoming state is kept; `"again"` is that rerun, which uses the
   * kept state and exchanges nothing. Without it, every rerun would wait for its predecessor's
   * rerun, and the ranks' backward passes would take turns instead of overlapping.
   */
  recompute?: "first" | "again";
}

/** Inputs of {@linkcode LaspAttention.backward}. */
export interface LaspBackwardInputs {
  /** Gradient of the output [B, H, n, dv]. */
  dO: Tensor;
  /** The layer whose forward is undone. */
  layer: number;
}

/**
 * What a model's blocks need of their attention (lib/model/model.ts): {@linkcode LaspAttention}
 * for training and evaluation, `RecurrentAttention` (lib/model/recurrent_attention.ts) for
 * decoding. One object serves every layer.
 */
export interface AttentionLayer {
  /** o [B, H, n, dv] of the given tokens. */
  forward(gpu: Gpu, inputs: LaspForwardInputs): Promise<{ o: Tensor }>;
  /** dq, dk, dv of the layer's pending forward. */
  backward(gpu: Gpu, inputs: LaspBackwardInputs): Promise<{ dq: Tensor; dk: Tensor; dv: Tensor }>;
  /** Drops whatever is kept for a backward (e.g. after an aborted step). */
  clear(): void;
}

/** This rank's LASP traffic since the last {@linkcode LaspAttention.takeCounters}. */
export interface LaspCounters {
  /** State messages sent (an all-gather counts one per peer). */
  messagesSent: number;
  /** Payload bytes sent. */
  bytesSent: number;
  /** State messages received. */
  messagesReceived: number;
  /** Payload bytes received. */
  bytesReceived: number;
  /** Milliseconds spent waiting for peers' states. */
  waitMs: number;
}

/** What forward keeps for backward. q, k, v must stay alive until then. */
interface Saved {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  decay: Decay;
  lambdas: Float64Array;
  dims: StateDims;
  length: number;
  step: number;
  /** S_(t−1) on the GPU; undefined on the first rank. */
  initialState: Tensor | undefined;
}

function zero(): LaspCounters {
  return { messagesSent: 0, bytesSent: 0, messagesReceived: 0, bytesReceived: 0, waitMs: 0 };
}

/** Sequence-parallel linear attention of one rank; one object serves every layer. */
export class LaspAttention implements AttentionLayer {
  /** Ring (LASP) or all-gather (LASP-2). */
  readonly mode: LaspMode;
  /** Ring: local state first, pass on, then outputs. */
  readonly overlap: boolean;
  #saved = new Map<number, Saved>();
  /** Incoming states of forwards marked `recompute: "first"`, by layer (undefined: none). */
  #kept = new Map<number, { step: number; state: Float32Array | undefined }>();
  #forwards = new Map<number, number>();
  #counters = zero();

  /** LASP over the sequence-parallel group of `comm`. */
  constructor(readonly comm: Communicator, readonly options: LaspAttentionOptions = {}) {
    this.mode = options.mode ?? "ring";
    if (this.mode !== "ring" && this.mode !== "allgather") {
      throw new Error(`Unknown LASP mode "${this.mode}": must be "ring" or "allgather"`);
    }
    this.overlap = options.overlap ?? true;
  }

  /** o = linear attention of this rank's tokens, given every earlier rank's tokens. */
  async forward(gpu: Gpu, inputs: LaspForwardInputs): Promise<{ o: Tensor }> {
    const { q, k, v, decay, shape, layer } = inputs;
    if (!Number.isInteger(layer) || layer < 0 || layer > 0xffffffff) {
      throw new Error(`Invalid layer ${layer}: must be an integer in [0, 2^32)`);
    }
    if (q.shape[2] !== shape.length) {
      throw new Error(
        `LASP: q has ${
          q.shape[2]
        } tokens but shape.length is ${shape.length} (pass the local shape, N/T)`,
      );
    }
    const again = inputs.recompute === "again";
    const kept = this.#kept.get(layer);
    if (again && !kept) {
      throw new Error(
        `LASP forward of layer ${layer}: recompute "again" without a kept "first" forward`,
      );
    }
    this.#kept.delete(layer);
    const step = again ? kept!.step : this.#forwards.get(layer) ?? 0;
    if (!again) this.#forwards.set(layer, step + 1);
    const lambdas = decayPerHead(decay, shape.heads);
    const dims = { batch: shape.batch, heads: shape.heads, perHead: shape.dk * shape.dv };
    const stateShape = [shape.batch, shape.heads, shape.dk, shape.dv];
    const t = this.comm.spRank, T = this.comm.sp, n = shape.length;
    const ranks = this.comm.groups.sp.ranks;
    const tuning = this.options.tuning;
    const ring = this.mode === "ring";
    const tag: Tag = { step, layer, dir: ring ? DIR_FORWARD : DIR_GATHER_FORWARD };

    let previous: Float32Array | undefined = kept?.state; // S_(t−1)
    let sendFinal = false;
    if (again || T === 1) {
      // the state is the kept one (or none): nothing to exchange
    } else if (ring && !this.overlap) {
      if (t > 0) previous = await this.#recv(ranks[t - 1], tag);
      sendFinal = t < T - 1;
    } else if (!ring || t < T - 1) {
      const local = await this.#download(gpu, await laLocalState(gpu, { k, v, decay, tuning }));
      if (ring) {
        if (t > 0) previous = await this.#recv(ranks[t - 1], tag);
        const next = previous ? propagateState(previous, local, lambdas, n, dims) : local;
        this.#send(ranks[t + 1], tag, next);
      } else {
        const gathered = await this.#allGather(local, tag);
        previous = prefixState(gathered, t, lambdas, n, dims);
      }
    } else {
      previous = await this.#recv(ranks[t - 1], tag); // last rank of the ring: nothing to send
    }
    if (inputs.recompute === "first") this.#kept.set(layer, { step, state: previous });

    const initialState = previous ? uploadTensor(gpu, previous, stateShape) : undefined;
    const { o, finalState } = await laForward(gpu, { q, k, v, decay, initialState, tuning });
    if (sendFinal) this.#send(ranks[t + 1], tag, await this.#download(gpu, finalState));
    else finalState.release();

    this.#forget(layer);
    if (inputs.needsGrad ?? true) {
      this.#saved.set(layer, { q, k, v, decay, lambdas, dims, length: n, step, initialState });
    } else initialState?.release();
    return { o };
  }

  /** dq, dk, dv of this rank's tokens, given dO of its tokens (and every later rank's). */
  async backward(
    gpu: Gpu,
    inputs: LaspBackwardInputs,
  ): Promise<{ dq: Tensor; dk: Tensor; dv: Tensor }> {
    const { dO, layer } = inputs;
    const saved = this.#saved.get(layer);
    if (!saved) {
      throw new Error(
        `LASP backward of layer ${layer}: no forward with needsGrad of that layer is pending`,
      );
    }
    this.#saved.delete(layer);
    const { q, k, v, decay, lambdas, dims, length: n, step, initialState } = saved;
    const t = this.comm.spRank, T = this.comm.sp;
    const ranks = this.comm.groups.sp.ranks;
    const tuning = this.options.tuning;
    const ring = this.mode === "ring";
    const tag: Tag = { step, layer, dir: ring ? DIR_BACKWARD : DIR_GATHER_BACKWARD };
    const stateShape = [dims.batch, dims.heads, q.shape[3], v.shape[3]];

    let next: Float32Array | undefined; // G_t
    let sendInitial = false;
    if (T > 1 && ring && !this.overlap) {
      if (t < T - 1) next = await this.#recv(ranks[t + 1], tag);
      sendInitial = t > 0;
    } else if (T > 1 && (!ring || t > 0)) {
      const local = await this.#download(
        gpu,
        await laLocalStateGrad(gpu, { q, dO, decay, tuning }),
      );
      if (ring) {
        if (t < T - 1) next = await this.#recv(ranks[t + 1], tag);
        const back = next ? propagateState(next, local, lambdas, n, dims) : local;
        this.#send(ranks[t - 1], tag, back);
      } else {
        const gathered = await this.#allGather(local, tag);
        next = suffixGrad(gathered, t, lambdas, n, dims);
      }
    } else if (T > 1) {
      next = await this.#recv(ranks[t + 1], tag); // first rank of the ring: nothing to send
    }

    const dFinalState = next ? uploadTensor(gpu, next, stateShape) : undefined;
    const grads = await laBackward(gpu, { q, k, v, dO, decay, initialState, dFinalState, tuning });
    if (sendInitial) this.#send(ranks[t - 1], tag, await this.#download(gpu, grads.dInitialState));
    else grads.dInitialState.release();
    dFinalState?.release();
    initialState?.release();
    return { dq: grads.dq, dk: grads.dk, dv: grads.dv };
  }

  /** Traffic since the last call (or creation); resets the counters. Call once per step. */
  takeCounters(): LaspCounters {
    const c = this.#counters;
    this.#counters = zero();
    return c;
  }

  /** Drops every state kept for backward or recomputation (e.g. after an aborted step). */
  clear(): void {
    for (const layer of [...this.#saved.keys()]) this.#forget(layer);
    this.#kept.clear();
  }

  #forget(layer: number): void {
    this.#saved.get(layer)?.initialState?.release();
    this.#saved.delete(layer);
  }

  async #download(gpu: Gpu, state: Tensor): Promise<Float32Array> {
    const [data] = await downloadTensors(gpu, [state]);
    state.release();
    return data as Float32Array;
  }

  #send(dst: number, tag: Tag, data: Float32Array): void {
    this.#counters.messagesSent++;
    this.#counters.bytesSent += data.byteLength;
    this.comm.send(dst, tag, data, { transfer: true });
  }

  async #recv(src: number, tag: Tag): Promise<Float32Array> {
    const start = performance.now();
    const data = await this.comm.recv(src, tag, { timeoutMs: this.options.timeoutMs });
    this.#counters.waitMs += performance.now() - start;
    this.#counters.messagesReceived++;
    this.#counters.bytesReceived += data.byteLength;
    return data;
  }

  async #allGather(local: Float32Array, tag: Tag): Promise<Float32Array> {
    const start = performance.now();
    const gathered = await this.comm.allGather(local, {
      group: "sp",
      tag,
      timeoutMs: this.options.timeoutMs,
    });
    const others = this.comm.sp - 1;
    this.#counters.waitMs += performance.now() - start;
    this.#counters.messagesSent += others;
    this.#counters.bytesSent += others * local.byteLength;
    this.#counters.messagesReceived += others;
    this.#counters.bytesReceived += others * local.byteLength;
    return gathered;
  }
}
