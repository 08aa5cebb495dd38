/**
 * The language model on one rank, forward and backward (llm.c style): token embedding, L
 * blocks (lib/model/block.ts), final SRMSNorm, LM head (tied to the embedding by default),
 * softmax cross-entropy. The rank holds its slice of each sequence (n = N/T tokens); the
 * blocks' linear attention runs through {@linkcode LaspAttention}, which is the plain fused
 * kernel when T = 1 — one code path for every sequence-parallel size.
 *
 * Accumulation rule: parameter gradients `+=` (zero them with {@linkcode Model.zeroGrads}),
 * activations and their gradients are written. Activations are freed as soon as the backward
 * no longer needs them; with `recompute`, only block inputs are kept and each block's forward
 * is rerun right before its backward.
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { emptyTensor, type Tensor, uploadTensor } from "../gpu/tensor.ts";
import type { AttentionLayer } from "../lasp/attention.ts";
import { srmsnormBackward, srmsnormForward } from "../ops/srmsnorm/srmsnorm.ts";
import {
  embeddingBackward,
  embeddingForward,
  type EmbeddingPlan,
  embeddingScatterPlan,
} from "../ops/embedding/embedding.ts";
import { LOGITS_CHUNK_BYTES, logitsChunkRows, lossHead } from "./loss_head.ts";
import { fill } from "../ops/activation/activation.ts";
import type { ModelConfig } from "./config.ts";
import { decayRates } from "./decay.ts";
import { parameterSpecs, type ParamSpec } from "./params.ts";
import {
  blockBackward,
  type BlockContext,
  blockForward,
  blockParamNames,
  type BlockParams,
  type BlockSaved,
  linear,
  ROW_CHUNK_BYTES,
  savedTensors,
} from "./block.ts";

/** Token ids of one micro-batch on this rank: [batch, n] row-major. */
export interface TokenBatch {
  /** Input ids [batch, n]. */
  inputs: Uint32Array;
  /** Next-token targets, same shape; absent for logits only. */
  targets?: Uint32Array;
  /** Sequences in the micro-batch. */
  batch: number;
}

/** What the forward keeps for the backward. */
interface ForwardState {
  /** Sequences in the micro-batch. */
  batch: number;
  length: number;
  plan: EmbeddingPlan;
  /** Block inputs x_l [B, n, D], l = 0..L (x_L feeds the final norm). */
  xs: Tensor[];
  /** Per block (absent with recompute). */
  saved: (BlockSaved | undefined)[];
  /** [B·n] r of the final norm. */
  rstdF: Tensor;
  /** [B·n, D] gradient of the final norm's output (the loss head's backward ran already). */
  dhf: Tensor;
}

/** Result of {@linkcode Model.forward} with targets. */
export interface LossResult {
  /** `[mean, count, sum]` per chunk of rows (on the GPU): the loss sum is Σ stats[2]. */
  stats: Tensor[];
  /** Targets counted on the host. */
  count: number;
}

/**
 * Calls around each block (ZeRO-3 gathers a layer's parameters before its forward or
 * backward and frees them after) and when gradients are final for the micro-batch (an
 * overlapped reduction starts on them while the backward goes on).
 */
export interface ModelHooks {
  /** Before block `l`'s forward or backward. */
  beforeBlock?(l: number): Promise<void>;
  /** After block `l`'s forward or backward. */
  afterBlock?(l: number): void;
  /** The gradients of these parameters received their last contribution of the backward. */
  gradsDone?(names: string[]): void;
}

/** Options of {@linkcode Model}. */
export interface ModelOptions {
  /** Model configuration. */
  config: ModelConfig;
  /**
   * This rank's sequence-parallel attention (`new LaspAttention(Communicator.solo())` alone),
   * or a `RecurrentAttention` to decode a sequence in pieces (lib/model/recurrent_attention.ts).
   */
  attention: AttentionLayer;
  /** Every parameter of {@linkcode parameterSpecs} by name, with its shape. */
  params: Map<string, Tensor>;
  /** Rows per chunk of the loss head's logits; default: 256 MiB of logits (at most half the binding limit). */
  logitsChunkRows?: number;
  /**
   * Most bytes of one row chunk of a block's widest activation ([B·n, 4D] or [B·n, G]);
   * default 1 GiB within the device's binding and buffer limits (lib/model/block.ts).
   */
  rowChunkBytes?: number;
}

/** Parameters and gradients of the model on one device, and its forward/backward. */
export class Model {
  /** Model configuration. */
  readonly config: ModelConfig;
  /** Sequence-parallel attention of this rank. */
  readonly attention: AttentionLayer;
  /** Rows per chunk of the loss head. */
  readonly chunkRows: number;
  /** Bytes per row chunk of the blocks' widest activations. */
  readonly rowChunkBytes: number;
  /** Calls around blocks and on final gradients (set by the trainer; none by default). */
  hooks: ModelHooks = {};
  /** Parameter tensors by checkpoint name. */
  readonly params: Map<string, Tensor>;
  /**
   * Gradient tensors by checkpoint name (created by {@linkcode zeroGrads}; after
   * `zeroGrads({ lazy: true })` or {@linkcode releaseGrads}, on their first write instead).
   */
  readonly grads: Map<string, Tensor> = new Map();
  /** Parameter specs in checkpoint order. */
  readonly specs: ParamSpec[];
  readonly #decay: number[][];
  readonly #specs: Map<string, ParamSpec>;
  #state: ForwardState | undefined;

  /** A model over `options.params` on `gpu`. */
  constructor(readonly gpu: Gpu, options: ModelOptions) {
    const { config, params } = options;
    this.config = config;
    this.attention = options.attention;
    // pooled buffers round sizes up: keep a chunk within half the device's binding limit
    const bytes = Math.min(LOGITS_CHUNK_BYTES, gpu.limits.maxStorageBufferBindingSize / 2);
    this.chunkRows = options.logitsChunkRows ?? logitsChunkRows(config.vocabSize, bytes);
    // pool buckets round a buffer up by at most 1/8: stay within the buffer limit after that
    this.rowChunkBytes = options.rowChunkBytes ?? Math.min(
      ROW_CHUNK_BYTES,
      gpu.limits.maxStorageBufferBindingSize,
      Math.floor(gpu.limits.maxBufferSize / 1.125),
    );
    if (!(this.rowChunkBytes > 0)) {
      throw new Error(`Model: rowChunkBytes ${this.rowChunkBytes} must be a positive number`);
    }
    this.specs = parameterSpecs(config);
    for (const spec of this.specs) {
      const t = params.get(spec.name);
      const same = t && t.shape.length === spec.shape.length &&
        t.shape.every((d, i) => d === spec.shape[i]);
      if (!same) {
        throw new Error(
          `Model parameter ${spec.name}: expected shape [${spec.shape.join(", ")}], got ${
            t ? `[${t.shape.join(", ")}]` : "nothing"
          }`,
        );
      }
    }
    this.params = params;
    this.#specs = new Map(this.specs.map((s) => [s.name, s]));
    this.#decay = decayRates(config);
  }

  /**
   * Sets every gradient to zero (allocating them the first time). `lazy`: frees them instead;
   * each is allocated (zeroed) when the next forward/backward first writes it, so a caller
   * that frees gradients as they are consumed (ZeRO-2/3) never holds all of them at once.
   */
  async zeroGrads(options: { lazy?: boolean } = {}): Promise<void> {
    if (options.lazy) return this.releaseGrads(this.specs.map((s) => s.name));
    for (const { name } of this.specs) {
      const g = this.grads.get(name);
      if (g) await fill(this.gpu, g, { value: 0 });
      else await this.#grad(name);
    }
  }

  /** Frees these gradients (e.g. once reduced); their next write allocates them zeroed. */
  releaseGrads(names: readonly string[]): void {
    for (const name of names) {
      this.grads.get(name)?.release();
      this.grads.delete(name);
    }
  }

  /** The gradient of a parameter, allocated zeroed if absent (`+=` needs a zero start). */
  async #grad(name: string): Promise<Tensor> {
    let g = this.grads.get(name);
    if (!g) {
      const spec = this.#specs.get(name);
      if (!spec) throw new Error(`Model: no parameter named ${name}`);
      this.grads.set(name, g = emptyTensor(this.gpu, spec.shape));
      await fill(this.gpu, g, { value: 0 });
    }
    return g;
  }

  /** Layer `l`'s context; `withGrads`: its gradients too (allocated now if absent). */
  async #block(l: number, withGrads: boolean): Promise<BlockContext> {
    const names = blockParamNames(l);
    const params: Partial<BlockParams> = {}, grads: Partial<BlockParams> = {};
    for (const [key, name] of Object.entries(names)) {
      if (!this.params.has(name)) continue; // e.g. norm gains without normGain
      params[key as keyof BlockParams] = this.params.get(name)!;
      if (withGrads) grads[key as keyof BlockParams] = await this.#grad(name);
    }
    return {
      gpu: this.gpu,
      config: this.config,
      attention: this.attention,
      layer: l,
      decay: this.#decay[l],
      params: params as BlockParams,
      grads: grads as BlockParams,
      rowChunkBytes: this.rowChunkBytes,
    };
  }

  get #headWeight(): Tensor {
    return this.params.get(this.config.tieEmbeddings ? "embed_tokens.weight" : "lm_head.weight")!;
  }

  /**
   * Forward of one micro-batch. With targets: the loss statistics; with `needsGrad` also the
   * loss head's backward for the loss `lossScale · Σ (this rank's token losses)` (the trainer
   * passes 1 / global target count, so gradients summed over ranks are those of the global
   * mean), keeping what {@linkcode backward} needs. Without targets: the logits [B·n, V]
   * (caller releases).
   */
  async forward(
    tokens: TokenBatch,
    options: { needsGrad: boolean; recompute?: boolean; lossScale?: number },
  ): Promise<LossResult | Tensor> {
    const { gpu, config: c } = this;
    if (this.#state) throw new Error("Model.forward: the previous forward's backward is pending");
    const { batch } = tokens;
    const length = tokens.inputs.length / batch;
    if (!Number.isInteger(length) || length < 1) {
      throw new Error(
        `Model.forward: ${tokens.inputs.length} input ids do not split into ${batch} sequences`,
      );
    }
    if (tokens.targets && tokens.targets.length !== tokens.inputs.length) {
      throw new Error(
        `Model.forward: ${tokens.targets.length} targets for ${tokens.inputs.length} inputs`,
      );
    }
    const needsGrad = options.needsGrad && tokens.targets !== undefined;
    const recompute = needsGrad && (options.recompute ?? false);
    const plan = embeddingScatterPlan(gpu, tokens.inputs, { vocab: c.vocabSize });
    const ids = uploadTensor(gpu, tokens.inputs, [batch, length], "u32");
    let x = await embeddingForward(gpu, { weight: this.params.get("embed_tokens.weight")!, ids }); // [B, n, D]
    ids.release();
    const xs: Tensor[] = [x];
    const saved: (BlockSaved | undefined)[] = [];
    for (let l = 0; l < c.layers; l++) {
      await this.hooks.beforeBlock?.(l);
      const r = await blockForward(await this.#block(l, false), x, {
        needsGrad: needsGrad && !recompute,
        recompute: recompute ? "first" : undefined,
      });
      this.hooks.afterBlock?.(l);
      saved.push(r.saved);
      if (!needsGrad) x.release();
      x = r.out;
      xs.push(x);
    }
    const rows = batch * length;
    const nf = await srmsnormForward(gpu, x, {
      gain: this.params.get("final_norm.weight"),
      eps: c.normEps,
    });
    const hf = nf.y.reshape([rows, c.dim]); // [B·n, D]
    if (!tokens.targets) {
      const logits = await linear(gpu, hf, this.#headWeight); // [B·n, V]
      for (const t of [x, nf.rstd, nf.y, plan.tensor]) t.release();
      return logits;
    }
    if (needsGrad && !(typeof options.lossScale === "number" && options.lossScale > 0)) {
      throw new Error(`Model.forward: lossScale ${options.lossScale} must be a positive number`);
    }
    const headName = c.tieEmbeddings ? "embed_tokens.weight" : "lm_head.weight";
    const head = await lossHead(gpu, {
      hf,
      weight: this.#headWeight,
      targets: tokens.targets,
    }, {
      chunkRows: this.chunkRows,
      grad: needsGrad
        ? { lossScale: options.lossScale!, dweight: await this.#grad(headName) }
        : undefined,
    });
    nf.y.release();
    const result = { stats: head.stats, count: rows };
    if (!needsGrad) {
      for (const t of [x, nf.rstd, plan.tensor]) t.release();
      return result;
    }
    this.#state = { batch, length, plan, xs, saved, rstdF: nf.rstd, dhf: head.dhf! };
    return result;
  }

  /** Backward of the pending forward (whose loss head ran already): adds to the gradients. */
  async backward(options: { recompute?: boolean } = {}): Promise<void> {
    const { gpu, config: c } = this;
    const s = this.#state;
    if (!s) throw new Error("Model.backward: no forward with needsGrad is pending");
    this.#state = undefined;
    void options; // recomputation is decided per block by what the forward kept
    const done = (names: (string | undefined)[]) =>
      this.hooks.gradsDone?.(
        names.filter((n): n is string => n !== undefined && this.#specs.has(n)),
      );
    done(c.tieEmbeddings ? [] : ["lm_head.weight"]);
    const xL = s.xs[c.layers];
    const nf = await srmsnormBackward(
      gpu,
      { x: xL, rstd: s.rstdF, dy: s.dhf.reshape(xL.shape) },
      {
        gain: this.params.get("final_norm.weight"),
        dgain: c.normGain ? await this.#grad("final_norm.weight") : undefined,
        accumulate: c.normGain,
      },
    );
    for (const t of [s.dhf, s.rstdF, xL]) t.release();
    done(["final_norm.weight"]);
    let dx = nf.dx; // [B, n, D]
    for (let l = c.layers - 1; l >= 0; l--) {
      await this.hooks.beforeBlock?.(l);
      const ctx = await this.#block(l, true);
      const x = s.xs[l];
      let saved = s.saved[l];
      if (!saved) {
        const again = await blockForward(ctx, x, { needsGrad: true, recompute: "again" });
        again.out.release();
        saved = again.saved!;
      }
      const dPrev = await blockBackward(ctx, x, saved, dx);
      this.hooks.afterBlock?.(l);
      done(Object.values(blockParamNames(l)));
      dx.release();
      if (l > 0) x.release();
      dx = dPrev;
    }
    await embeddingBackward(gpu, { dy: dx, plan: s.plan }, {
      dweight: await this.#grad("embed_tokens.weight"),
      accumulate: true,
    });
    for (const t of [dx, s.xs[0], s.plan.tensor]) t.release();
    done(["embed_tokens.weight"]);
  }

  /** Drops a pending forward (e.g. after a failed step). */
  discard(): void {
    const s = this.#state;
    if (!s) return;
    this.#state = undefined;
    this.attention.clear();
    const held = new Set<Tensor>([s.plan.tensor, ...s.xs, s.rstdF, s.dhf]);
    for (const b of s.saved) if (b) { for (const t of savedTensors(b)) held.add(t); }
    for (const t of held) t.release();
  }

  /** Frees parameters and gradients. */
  destroy(): void {
    this.discard();
    for (const t of [...this.params.values(), ...this.grads.values()]) t.release();
    this.params.clear();
    this.grads.clear();
  }
}
