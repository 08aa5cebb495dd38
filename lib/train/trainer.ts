/**
 * The training core of one rank: model forward/backward over the rank's slice of each
 * sequence (LASP over its SP group, the plain kernel when SP = 1), gradient accumulation,
 * reduction over all ranks, global-norm clipping, AdamW with decoupled weight decay (none on
 * gains), warmup + cosine learning rate. Implements {@linkcode TrainerLike}.
 *
 * ZeRO: stage 0 keeps every moment on every rank and all-reduces the gradients in buckets
 * ({@linkcode GradReducer}); stages 1–3 go through {@linkcode ZeroDriver} (bucketed
 * reduce(-scatter), sharded AdamW; stage 3 shards the
 * parameters too and gathers one layer's at a time around its forward and backward). Each
 * bucket's reduction (a layer's at stage 3) starts as soon as the last micro-batch's backward
 * has finished its gradients, overlapping the rest of the backward.
 *
 * Loss normalization: every rank scales its token losses by 1 / (target tokens of the global
 * batch: all ranks, all micro-batches), so the gradients summed over ranks are exactly those
 * of the global mean loss, whatever the SP and DP sizes; the reported loss is that same
 * global mean. Reductions run in a fixed order, so runs are reproducible from the seed.
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import {
  downloadTensors,
  emptyTensor,
  type Tensor,
  uploadTensor,
  writeTensor,
} from "../gpu/tensor.ts";
import type { Communicator } from "../dist/communicator.ts";
import { LaspAttention, type LaspCounters } from "../lasp/attention.ts";
import { adamwStep } from "../ops/adamw/adamw.ts";
import { fill } from "../ops/activation/activation.ts";
import type { ModelConfig } from "../model/config.ts";
import { parameterSpecs } from "../model/params.ts";
import { initParams } from "../model/init.ts";
import { type LossResult, Model } from "../model/model.ts";
import { GradReducer } from "./grad_reduce.ts";
import { ZeroDriver } from "./zero_driver.ts";
import type { BucketReducer } from "./bucket_reducer.ts";
import { learningRate } from "./schedule.ts";
import { resolveTrainConfig } from "./validate.ts";
import type {
  MicroBatch,
  NamedArrays,
  StepStats,
  TrainConfig,
  TrainerLike,
  TrainerState,
} from "./types.ts";

/** Options of {@linkcode Trainer.create}. */
export interface TrainerOptions {
  /** Model configuration. */
  model: ModelConfig;
  /** Optimization settings. */
  train: TrainConfig;
  /** Ranks and groups: SP size and this rank's SP index pick the slice, DP the batch shard. */
  comm: Communicator;
}

/** One rank's trainer. */
export class Trainer implements TrainerLike {
  /** Model configuration. */
  readonly model: ModelConfig;
  /** Optimization settings (validated). */
  readonly train: TrainConfig;
  /** Ranks and groups of the run. */
  readonly comm: Communicator;
  /** The rank's model (parameters, gradients, forward/backward). */
  readonly net: Model;
  readonly #attention: LaspAttention;
  /** ZeRO-0: replicated moments, one flat all-reduce per step. */
  readonly #reducer: GradReducer | undefined;
  #reduceWaitMs = 0;
  readonly #m = new Map<string, Tensor>();
  readonly #v = new Map<string, Tensor>();
  /** ZeRO-1/2/3: sharded moments (and, at 3, parameters), bucketed reduction. */
  #zero: ZeroDriver | undefined;
  #step = 0;

  private constructor(gpu: Gpu, options: TrainerOptions) {
    this.model = options.model;
    this.train = resolveTrainConfig(options.train);
    this.comm = options.comm;
    if (this.model.seqLen % this.comm.sp !== 0) {
      throw new Error(
        `Cannot split sequences of seqLen ${this.model.seqLen} over ${this.comm.sp} sequence-parallel ranks: seqLen must be a multiple of SP`,
      );
    }
    this.#attention = new LaspAttention(this.comm, { mode: this.train.laspMode });
    if (this.train.zero === 0) {
      const specs = parameterSpecs(this.model);
      this.#reducer = new GradReducer(this.comm, { specs, maxNorm: this.train.clip });
    }
    const host = initParams(this.model, this.train.seed);
    const params = new Map<string, Tensor>();
    for (const [name, a] of Object.entries(host)) {
      params.set(name, uploadTensor(gpu, a.data, a.shape));
    }
    this.net = new Model(gpu, { config: this.model, attention: this.#attention, params });
  }

  /** A trainer with parameters initialized from `train.seed` (identical on every rank). */
  static async create(gpu: Gpu, options: TrainerOptions): Promise<Trainer> {
    const trainer = new Trainer(gpu, options);
    if (trainer.train.zero > 0) {
      trainer.#zero = await ZeroDriver.create(gpu, trainer.comm, {
        net: trainer.net,
        train: trainer.train,
      });
    }
    for (const spec of trainer.#zero ? [] : trainer.net.specs) {
      for (const moments of [trainer.#m, trainer.#v]) {
        const t = emptyTensor(gpu, spec.shape);
        await fill(gpu, t, { value: 0 });
        moments.set(spec.name, t);
      }
    }
    await trainer.net.zeroGrads({ lazy: trainer.#lazyGrads });
    return trainer;
  }

  /**
   * ZeRO-2/3 free each bucket's gradients once reduced (lib/train/zero_driver.ts), so they are
   * allocated by the backward's first write instead of held zeroed between steps.
   */
  get #lazyGrads(): boolean {
    return this.train.zero >= 2;
  }

  get #gpu(): Gpu {
    return this.net.gpu;
  }

  /** Optimizer steps done. */
  get stepCount(): number {
    return this.#step;
  }

  /** Local token count of a micro-batch, checking its shape against the config. */
  #check(micro: MicroBatch, what: string): number {
    const local = this.model.seqLen / this.comm.sp;
    const n = micro.batch * local;
    if (!Number.isInteger(micro.batch) || micro.batch < 1 || micro.inputs.length !== n) {
      throw new Error(
        `${what}: expected inputs of [batch ${micro.batch}, seqLen/SP = ${local}] = ${n} ids, got ${micro.inputs.length}`,
      );
    }
    if (micro.targets.length !== n) {
      throw new Error(`${what}: ${micro.targets.length} targets for ${n} inputs`);
    }
    return n;
  }

  /** Sum over all ranks of small host values (identity with one rank). */
  async #sumAll(values: number[]): Promise<number[]> {
    if (this.comm.world === 1) return values;
    return [...await this.comm.allReduce(Float32Array.from(values))];
  }

  /** One optimizer step over `micro.length === train.gradAccum` micro-batches. */
  async step(micro: MicroBatch[]): Promise<StepStats> {
    if (micro.length !== this.train.gradAccum) {
      throw new Error(
        `Trainer.step: got ${micro.length} micro-batches, expected gradAccum = ${this.train.gradAccum}`,
      );
    }
    const local = micro.reduce((n, m, i) => n + this.#check(m, `micro-batch ${i}`), 0);
    const [tokens] = await this.#sumAll([local]);
    const zero = this.#zero;
    await this.#useZeroHooks();
    let reducer: BucketReducer | undefined;
    const recompute = this.train.recompute;
    const stats: Tensor[] = [];
    try {
      for (const [i, m] of micro.entries()) {
        if (i === micro.length - 1) {
          // overlap: each bucket's reduction starts once the last backward finishes its
          // gradients (at ZeRO-3 beside the parameter gathers of the layers still ahead: ring
          // operations of different kinds may interleave in any order, lib/dist/ring.ts)
          const r = reducer = zero
            ? zero.reducer()
            : this.#reducer!.start(this.#gpu, this.net.grads);
          // beside ZeRO-3's gather hooks
          if (r) {
            this.net.hooks = {
              ...this.net.hooks,
              gradsDone: (ns) => ns.forEach((n) => r.markReady(n)),
            };
          }
        }
        const r = await this.net.forward(m, {
          needsGrad: true,
          recompute,
          lossScale: 1 / tokens,
        }) as LossResult;
        stats.push(...r.stats);
        await this.net.backward();
      }
    } catch (e) {
      this.net.discard();
      for (const s of stats) s.release();
      throw e;
    } finally {
      this.net.hooks = {};
    }
    const step = this.#step + 1;
    const lr = learningRate(step, this.train);
    const { gradNorm, lossSum } = zero
      ? await this.#shardedUpdate(zero, stats, { lr, step, reducer: reducer! }) // set by the last micro-batch
      : await this.#replicatedUpdate(stats, { lr, step, reducer });
    for (const s of stats) s.release();
    this.#reduceWaitMs += reducer?.waitMs ?? 0;
    await this.net.zeroGrads({ lazy: this.#lazyGrads });
    this.#step = step;
    return { step, loss: lossSum / tokens, gradNorm, lr, tokens };
  }

  /** ZeRO-0: bucketed all-reduce (none with one rank), global clip, AdamW on every parameter. */
  async #replicatedUpdate(
    stats: Tensor[],
    hyper: { lr: number; step: number; reducer?: BucketReducer },
  ): Promise<{ gradNorm: number; lossSum: number }> {
    const gpu = this.#gpu, t = this.train;
    const clip = await this.#reducer!.finish(gpu, this.net.grads, hyper.reducer);
    for (const spec of this.net.specs) {
      await adamwStep(gpu, {
        param: this.net.params.get(spec.name)!,
        grad: this.net.grads.get(spec.name)!,
        m: this.#m.get(spec.name)!,
        v: this.#v.get(spec.name)!,
        clip,
      }, {
        lr: hyper.lr,
        beta1: t.beta1,
        beta2: t.beta2,
        eps: t.eps,
        weightDecay: spec.decay ? t.weightDecay : 0,
        step: hyper.step,
      });
    }
    const [norm, ...sums] = await downloadTensors(gpu, [clip, ...stats]);
    clip.release();
    const [lossSum] = await this.#sumAll([sums.reduce((a, s) => a + s[2], 0)]);
    return { gradNorm: norm[0], lossSum };
  }

  /**
   * ZeRO-3: gathers the units outside the layers (embedding, final norm, head) and sets hooks
   * that gather each layer's unit right before its forward or backward and free it right
   * after, so one layer's full parameters are alive at a time. Nothing for other stages.
   */
  async #useZeroHooks(): Promise<void> {
    const zero = this.#zero;
    if (zero?.stage !== 3) return;
    for (const [u, unit] of zero.layout.units.entries()) {
      if (!unit.entries.some((e) => e.name.startsWith("layers."))) await zero.gather(u);
    }
    this.net.hooks = {
      beforeBlock: (l) => zero.gather(zero.unitOfLayer(l)),
      afterBlock: (l) => zero.free(zero.unitOfLayer(l)),
    };
  }

  /** ZeRO-1/2/3: bucketed reduce(-scatter), sharded AdamW; the loss sum rides a tiny all-reduce. */
  async #shardedUpdate(
    zero: ZeroDriver,
    stats: Tensor[],
    hyper: { lr: number; step: number; reducer: BucketReducer },
  ): Promise<{ gradNorm: number; lossSum: number }> {
    const sums = await downloadTensors(this.#gpu, stats);
    const [lossSum] = await this.#sumAll([sums.reduce((a, s) => a + s[2], 0)]);
    const { gradNorm } = await zero.finishStep(hyper.reducer, hyper);
    return { gradNorm, lossSum };
  }

  /** Mean loss over `batches` on every rank (no update). */
  async evaluate(batches: MicroBatch[]): Promise<number> {
    let count = 0;
    const stats: Tensor[] = [];
    await this.#useZeroHooks();
    try {
      for (const [i, b] of batches.entries()) {
        count += this.#check(b, `eval batch ${i}`);
        const r = await this.net.forward(b, { needsGrad: false }) as LossResult;
        stats.push(...r.stats);
      }
      const sums = await downloadTensors(this.#gpu, stats);
      const [sum, total] = await this.#sumAll([sums.reduce((a, s) => a + s[2], 0), count]);
      if (total === 0) throw new Error("Trainer.evaluate: no batches on any rank");
      return sum / total;
    } finally {
      for (const s of stats) s.release();
      this.net.hooks = {};
      this.#zero?.freeAll();
    }
  }

  /** This rank's LASP state traffic since the last call. */
  takeLaspCounters(): LaspCounters {
    return this.#attention.takeCounters();
  }

  /**
   * Milliseconds this rank's steps waited, after their backward, for gradient reductions still
   * running, since the last call (0 with one rank): what the overlap did not hide.
   */
  takeReduceWaitMs(): number {
    const ms = this.#reduceWaitMs;
    this.#reduceWaitMs = 0;
    return ms;
  }

  /** Parameters and optimizer moments (one readback; with ZeRO, collective over all ranks). */
  async exportState(): Promise<TrainerState> {
    const specs = this.net.specs;
    if (this.#zero) {
      let params: NamedArrays | undefined;
      if (this.#zero.stage < 3) {
        const data = await downloadTensors(
          this.#gpu,
          specs.map((s) => this.net.params.get(s.name)!),
        );
        params = {};
        specs.forEach((s, i) =>
          params![s.name] = { data: data[i] as Float32Array, shape: [...s.shape] }
        );
      }
      return { ...await this.#zero.exportState(params), step: this.#step };
    }
    const tensors = specs.flatMap((s) => [
      this.net.params.get(s.name)!,
      this.#m.get(s.name)!,
      this.#v.get(s.name)!,
    ]);
    const data = (await downloadTensors(this.#gpu, tensors)) as Float32Array[];
    const params: NamedArrays = {}, optimizer: NamedArrays = {};
    specs.forEach((s, i) => {
      params[s.name] = { data: data[3 * i], shape: [...s.shape] };
      optimizer[`${s.name}.exp_avg`] = { data: data[3 * i + 1], shape: [...s.shape] };
      optimizer[`${s.name}.exp_avg_sq`] = { data: data[3 * i + 2], shape: [...s.shape] };
    });
    return { params, optimizer, step: this.#step };
  }

  /** Restores {@linkcode exportState}'s output; names and shapes must match this model. */
  async importState(state: TrainerState): Promise<void> {
    if (!Number.isInteger(state.step) || state.step < 0) {
      throw new Error(`importState: step ${state.step} must be an integer ≥ 0`);
    }
    const writes: [Tensor, NamedArrays[string]][] = [];
    const take = (arrays: NamedArrays, name: string, into: Tensor | undefined, what: string) => {
      const a = arrays[name];
      if (!into) return; // ZeRO: the driver checks and restores what it shards
      if (!a) throw new Error(`importState: ${what} "${name}" is missing`);
      const same = a.shape.length === into.shape.length &&
        a.shape.every((d, i) => d === into.shape[i]);
      if (!same || a.data.length !== into.size) {
        throw new Error(
          `importState: ${what} "${name}" has shape [${a.shape.join(", ")}], expected [${
            into.shape.join(", ")
          }]`,
        );
      }
      writes.push([into, a]);
    };
    const expected = new Set<string>();
    for (const s of this.net.specs) {
      take(state.params, s.name, this.net.params.get(s.name), "parameter");
      take(state.optimizer, `${s.name}.exp_avg`, this.#m.get(s.name), "optimizer state");
      take(state.optimizer, `${s.name}.exp_avg_sq`, this.#v.get(s.name), "optimizer state");
      expected.add(s.name);
    }
    const extra = Object.keys(state.params).find((n) => !expected.has(n));
    if (extra) throw new Error(`importState: unknown parameter "${extra}" for this model config`);
    for (const [t, a] of writes) writeTensor(t, a.data);
    await this.#zero?.importState(state);
    this.#step = state.step;
    await this.#gpu.commands.finish();
  }

  /** GPU bytes in use on this rank now, and the peak since the last call. */
  memory(): { inUseBytes: number; peakBytes: number } {
    const pool = this.#gpu.pool;
    const out = { inUseBytes: pool.inUseBytes, peakBytes: pool.peakInUseBytes };
    pool.resetPeak();
    return out;
  }

  /** Frees parameters, gradients and optimizer states. */
  destroy(): void {
    this.#zero?.freeAll();
    this.#zero?.destroy();
    this.net.destroy();
    for (const t of [...this.#m.values(), ...this.#v.values()]) t.release();
    this.#m.clear();
    this.#v.clear();
    this.net.gpu.commands.submit(); // recorded work (the zeroing of gradients) leaves the encoder
  }
}
