/**
 * ZeRO-1/2/3 for a trainer: the layout by stage (gradient buckets of `bucketMiB` in backward
 * order for stages 1–2, one unit per layer for 3), a {@linkcode BucketReducer} per step, the
 * sharded {@linkcode ZeroOptimizer}, and checkpoints in the unsharded form of
 * {@linkcode TrainerState}. How a trainer uses it, per optimizer step:
 *
 * 1. `await beginStep()` — ZeRO-3: gathers the parameters (all units; a model with per-layer
 *    hooks calls `gather(unitOfLayer(l))` / `free(...)` itself instead).
 * 2. forward/backward of every micro-batch; on the last one, `const r = reducer()` and
 *    `r.markReady(name)` as each gradient becomes final (or all of them after the backward).
 * 3. `await finishStep(r, { lr, step })` → global grad norm; updates the parameters (stages
 *    1–2: every rank's full tensors; 3: the shards, and frees the gathered units).
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { Communicator } from "../dist/communicator.ts";
import type { ParamSpec } from "../model/params.ts";
import { BucketReducer } from "./bucket_reducer.ts";
import { reductionMode, ZeroOptimizer, type ZeroStage, type ZeroStepResult } from "./zero.ts";
import {
  backwardOrder,
  bucketUnits,
  type FlatParam,
  layerUnits,
  ZeroLayout,
  type ZeroMemory,
} from "./zero_layout.ts";
import type { NamedArrays, TrainConfig } from "./types.ts";

/** Default gradient bucket size (PyTorch DDP's). */
export const DEFAULT_BUCKET_MIB = 25;

/** What the driver needs of a model: full parameter and gradient tensors by name. */
export interface ZeroNet {
  /** Parameters in checkpoint order (names, shapes, weight-decay rule). */
  readonly specs: readonly ParamSpec[];
  /** Full parameter tensors (ZeRO-3: only the gathered units). */
  readonly params: Map<string, Tensor>;
  /** Full gradient tensors. */
  readonly grads: ReadonlyMap<string, Tensor>;
  /** Frees these gradient tensors (stages 2–3 call it once a bucket is reduced). */
  releaseGrads?(names: readonly string[]): void;
}

/** ZeRO stages 1–3 of one rank. */
export class ZeroDriver {
  /** Units (buckets, or layers at stage 3) and this rank's shards. */
  readonly layout: ZeroLayout;
  /** The sharded AdamW. */
  readonly optimizer: ZeroOptimizer;

  private constructor(
    readonly gpu: Gpu,
    readonly comm: Communicator,
    readonly net: ZeroNet,
    readonly stage: ZeroStage,
    layout: ZeroLayout,
    optimizer: ZeroOptimizer,
  ) {
    this.layout = layout;
    this.optimizer = optimizer;
  }

  /** A driver over `net`'s parameters (their current values become the initial shards). */
  static async create(
    gpu: Gpu,
    comm: Communicator,
    init: { net: ZeroNet; train: TrainConfig; bucketMiB?: number; pieceBytes?: number },
  ): Promise<ZeroDriver> {
    const { net, train } = init;
    const stage = train.zero;
    if (stage !== 1 && stage !== 2 && stage !== 3) {
      throw new Error(`ZeroDriver: stage ${stage} must be 1, 2 or 3 (stage 0 needs no driver)`);
    }
    const flat: FlatParam[] = net.specs.map((s) => ({
      name: s.name,
      size: s.shape.reduce((a, b) => a * b, 1),
      decay: s.decay,
    }));
    const bucketBytes = (init.bucketMiB ?? DEFAULT_BUCKET_MIB) * (1 << 20);
    const units = stage === 3 ? layerUnits(flat) : bucketUnits(backwardOrder(flat), bucketBytes);
    const layout = new ZeroLayout(units, comm.world, comm.rank);
    const optimizer = await ZeroOptimizer.create(gpu, comm, {
      layout,
      params: net.params,
      options: {
        stage,
        beta1: train.beta1,
        beta2: train.beta2,
        eps: train.eps,
        weightDecay: train.weightDecay,
        clip: train.clip,
        pieceBytes: init.pieceBytes,
      },
    });
    return new ZeroDriver(gpu, comm, net, stage, layout, optimizer);
  }

  /** ZeRO-3 gather unit of layer `l` (`layers.<l>.*`). */
  unitOfLayer(l: number): number {
    const name = this.net.specs.find((s) => s.name.startsWith(`layers.${l}.`))?.name;
    if (!name) throw new Error(`No parameters of layer ${l} in the model`);
    return this.layout.unitOf(name);
  }

  /** ZeRO-3: gathers every unit's parameters (no-op for stages 1–2). */
  async beginStep(): Promise<void> {
    if (this.stage !== 3) return;
    for (let u = 0; u < this.layout.units.length; u++) await this.optimizer.gather(u);
  }

  /** ZeRO-3: gathers unit `u` (before the layer's forward or backward). */
  gather(u: number): Promise<void> {
    return this.optimizer.gather(u);
  }

  /** ZeRO-3: frees unit `u` (after the layer's forward or backward). */
  free(u: number): void {
    this.optimizer.free(u);
  }

  /** ZeRO-3: frees every gathered unit (e.g. after an evaluation between steps). */
  freeAll(): void {
    if (this.stage !== 3) return;
    for (let u = 0; u < this.layout.units.length; u++) this.optimizer.free(u);
  }

  /** The step's gradient reducer: call `markReady(name)` as each gradient becomes final. */
  reducer(): BucketReducer {
    return new BucketReducer(this.gpu, this.comm, this.layout, this.net.grads, {
      mode: reductionMode(this.stage),
      writeBack: false,
      pieceBytes: this.optimizer.options.pieceBytes,
      // ZeRO-2/3 keep only the reduced shard: a bucket's full gradients go once downloaded
      release: this.stage >= 2 && this.net.releaseGrads
        ? (names) => this.net.releaseGrads!(names)
        : undefined,
    });
  }

  /** Finishes the reduction, updates the parameters; ZeRO-3 then frees every gathered unit. */
  async finishStep(
    reducer: BucketReducer,
    hyper: { lr: number; step: number },
  ): Promise<ZeroStepResult> {
    const reduced = await reducer.finish();
    this.freeAll();
    return await this.optimizer.step(reduced, hyper);
  }

  /** Bytes per rank of parameters, gradients and moments at this stage. */
  memory(): ZeroMemory {
    return this.optimizer.memory();
  }

  /**
   * Unsharded parameters and moments (names as in {@linkcode TrainerState}); stages 1–2 read
   * the parameters from `net.params` (pass them in `params`, e.g. from the trainer's readback).
   */
  async exportState(
    params?: NamedArrays,
  ): Promise<{ params: NamedArrays; optimizer: NamedArrays }> {
    const shape = new Map(this.net.specs.map((s) => [s.name, [...s.shape]]));
    const outParams: NamedArrays = {};
    if (this.stage === 3) {
      for (const [name, data] of await this.optimizer.exportParams()) {
        outParams[name] = { data, shape: shape.get(name)! };
      }
    } else if (params) Object.assign(outParams, params);
    const optimizer: NamedArrays = {};
    for (const [name, { m, v }] of await this.optimizer.exportMoments()) {
      optimizer[`${name}.exp_avg`] = { data: m, shape: shape.get(name)! };
      optimizer[`${name}.exp_avg_sq`] = { data: v, shape: shape.get(name)! };
    }
    return { params: outParams, optimizer };
  }

  /** Restores moments (and ZeRO-3 parameter shards) from unsharded arrays. */
  async importState(state: { params: NamedArrays; optimizer: NamedArrays }): Promise<void> {
    const need = (arrays: NamedArrays, name: string) => {
      const a = arrays[name];
      if (!a) throw new Error(`importState: "${name}" is missing`);
      return a.data;
    };
    this.optimizer.importMoments((name) => ({
      m: need(state.optimizer, `${name}.exp_avg`),
      v: need(state.optimizer, `${name}.exp_avg_sq`),
    }));
    if (this.stage === 3) await this.optimizer.importParams((name) => need(state.params, name));
  }

  /** Frees the optimizer's tensors. */
  destroy(): void {
    this.optimizer.destroy();
  }
}
