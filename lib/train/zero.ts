/**
 * Sharded AdamW over the data-parallel world (ZeRO), on a {@linkcode ZeroLayout}:
 *
 * - stage 0: every rank updates every parameter (replicated moments; gradients all-reduced).
 * - stage 1: gradients all-reduced; rank r updates only its shard of each unit with its shard
 *   of the moments, then the parameters are all-gathered (ring) into every rank's tensors.
 * - stage 2: gradients reduce-scattered (a rank receives only its shard); update and gather
 *   as in stage 1.
 * - stage 3 (FSDP): parameters live only as shards; {@linkcode ZeroOptimizer.gather} brings a
 *   unit's full tensors before its forward/backward and {@linkcode ZeroOptimizer.free} drops
 *   them after; gradients reduce-scattered.
 *
 * The gradient-norm clip uses the global norm: each rank sums the squares of its gradient
 * shard in float64, the sums are all-gathered (as float32 hi + lo pairs, so nothing is lost)
 * and added in rank order, so every rank computes the same norm and scale; they go to the
 * AdamW kernel as its `[norm, scale]` clip tensor.
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import {
  copyTensor,
  downloadTensors,
  emptyTensor,
  type Tensor,
  uploadTensor,
  writeTensor,
} from "../gpu/tensor.ts";
import type { Communicator } from "../dist/communicator.ts";
import { ringAllGather } from "../dist/ring.ts";
import { adamwStep } from "../ops/adamw/adamw.ts";
import type { ReducedGrads } from "./bucket_reducer.ts";
import type { ShardSegment, ZeroLayout, ZeroMemory } from "./zero_layout.ts";

/** ZeRO stage. */
export type ZeroStage = 0 | 1 | 2 | 3;

/** Fixed AdamW settings of {@linkcode ZeroOptimizer}. */
export interface ZeroOptimizerOptions {
  /** 0: replicated, 1: sharded moments, 2: and gradients, 3: and parameters. */
  stage: ZeroStage;
  /** AdamW β1. */
  beta1: number;
  /** AdamW β2. */
  beta2: number;
  /** AdamW ε. */
  eps: number;
  /** Decoupled weight decay of parameters whose layout entry has `decay`. */
  weightDecay: number;
  /** Global gradient-norm clip (0: off). */
  clip: number;
  /** Message size of the ring collectives, bytes. */
  pieceBytes?: number;
}

/** What one {@linkcode ZeroOptimizer.step} reports. */
export interface ZeroStepResult {
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Factor the gradients were scaled by (1 without clipping). */
  scale: number;
}

interface SegmentState {
  segment: ShardSegment;
  m: Tensor;
  v: Tensor;
  /** ZeRO-3: the parameter shard (the only copy). */
  param?: Tensor;
}

/** The reduction each stage needs from the {@linkcode BucketReducer}. */
export function reductionMode(stage: ZeroStage): "all-reduce" | "reduce-scatter" {
  return stage >= 2 ? "reduce-scatter" : "all-reduce";
}

/** Sharded AdamW; parameters of stages 0–2 are the caller's full tensors (`params`). */
export class ZeroOptimizer {
  readonly #segments: SegmentState[][];
  /** ZeRO-3: host copy of this rank's parameter shard per unit (what gathers send). */
  readonly #hostShards: Float32Array[] = [];
  readonly #gathered = new Set<number>();
  readonly #shapes = new Map<string, readonly number[]>();

  /**
   * An optimizer over `params`: every parameter of the layout, full, with its initial values
   * (identical on all ranks). Stages 0–2 keep updating these tensors; stage 3 keeps only its
   * shards and empties `params` (call {@linkcode gather} to refill a unit).
   */
  static async create(
    gpu: Gpu,
    comm: Communicator,
    init: { layout: ZeroLayout; params: Map<string, Tensor>; options: ZeroOptimizerOptions },
  ): Promise<ZeroOptimizer> {
    const opt = new ZeroOptimizer(gpu, comm, init.layout, init.params, init.options);
    if (init.options.stage === 3) await opt.#shardParams();
    return opt;
  }

  private constructor(
    readonly gpu: Gpu,
    readonly comm: Communicator,
    readonly layout: ZeroLayout,
    readonly params: Map<string, Tensor>,
    readonly options: ZeroOptimizerOptions,
  ) {
    const { stage } = options;
    if (![0, 1, 2, 3].includes(stage)) {
      throw new Error(`Invalid ZeRO stage ${stage}: must be 0, 1, 2 or 3`);
    }
    if (stage > 0 && (layout.world !== comm.world || layout.rank !== comm.rank)) {
      throw new Error(
        `ZeroOptimizer: layout of rank ${layout.rank}/${layout.world} on rank ${comm.rank}/${comm.world}`,
      );
    }
    if (stage === 0 && layout.world !== 1) {
      throw new Error(
        `ZeroOptimizer: stage 0 takes a layout over 1 rank (no sharding), got ${layout.world}`,
      );
    }
    for (const e of layout.units.flatMap((unit) => unit.entries)) {
      const full = params.get(e.name);
      if (!full || full.size !== e.size) {
        throw new Error(
          `ZeroOptimizer: parameter ${e.name} of ${e.size} elements is missing or has another size`,
        );
      }
      this.#shapes.set(e.name, full.shape);
    }
    this.#segments = layout.units.map((_, u) =>
      layout.segments(u).map((segment) => {
        const full = params.get(segment.name)!;
        const zeros = new Float32Array(segment.length);
        const state: SegmentState = {
          segment,
          m: uploadTensor(gpu, zeros, [segment.length]),
          v: uploadTensor(gpu, zeros, [segment.length]),
        };
        if (stage === 3) state.param = this.#copyOut(full, segment);
        return state;
      })
    );
  }

  /** Bytes per rank of parameters, gradients and moments at this stage. */
  memory(): ZeroMemory {
    return this.layout.memory(this.options.stage);
  }

  /** ZeRO-3: reads the shards' host copies and drops the full tensors. */
  async #shardParams(): Promise<void> {
    await this.#refreshHostShards();
    for (const unit of this.layout.units) {
      for (const e of unit.entries) {
        this.params.get(e.name)?.release();
        this.params.delete(e.name);
      }
    }
  }

  /** ZeRO-3: all-gathers unit `u`'s parameters into full tensors in `params`. */
  async gather(u: number): Promise<void> {
    this.#requireStage3("gather");
    if (this.#gathered.has(u)) return;
    const unit = this.layout.units[u];
    const flat = await ringAllGather(this.comm, this.#hostShards[u], {
      total: unit.size,
      pieceBytes: this.options.pieceBytes,
    });
    for (const e of unit.entries) {
      this.params.set(
        e.name,
        uploadTensor(
          this.gpu,
          flat.subarray(e.offset, e.offset + e.size),
          this.#shapes.get(e.name)!,
        ),
      );
    }
    this.#gathered.add(u);
  }

  /** ZeRO-3: releases unit `u`'s full parameter tensors. */
  free(u: number): void {
    this.#requireStage3("free");
    if (!this.#gathered.delete(u)) return;
    for (const e of this.layout.units[u].entries) {
      this.params.get(e.name)!.release();
      this.params.delete(e.name);
    }
  }

  /**
   * One AdamW step from the reduced gradients (full sums per unit for stages 0–1, this rank's
   * shards for 2–3, as {@linkcode BucketReducer} returns them with {@linkcode reductionMode}).
   * Stages 1–2 end with every rank's `params` holding the updated values.
   */
  async step(grads: ReducedGrads, hyper: { lr: number; step: number }): Promise<ZeroStepResult> {
    const { gpu, layout, options } = this;
    if (grads.units.length !== layout.units.length) {
      throw new Error(
        `ZeroOptimizer.step: ${grads.units.length} gradient units for a layout of ${layout.units.length}`,
      );
    }
    // this rank's gradient shard per unit
    const shards = layout.units.map((unit, u) => {
      const g = grads.units[u];
      const [s, e] = layout.shard(u);
      const full = reductionMode(options.stage) === "all-reduce";
      if (g.length !== (full ? unit.size : e - s)) {
        throw new Error(
          `ZeroOptimizer.step: unit ${u} gradient has ${g.length} values, expected ${
            full ? unit.size : e - s
          }`,
        );
      }
      return full ? g.subarray(s, e) : g;
    });
    const { gradNorm, scale } = await this.#globalNorm(shards);
    const clip = uploadTensor(gpu, [gradNorm, scale], [2]);
    const updated: Tensor[][] = [];
    for (let u = 0; u < layout.units.length; u++) {
      const out: Tensor[] = [];
      for (const st of this.#segments[u]) {
        const { segment } = st;
        const grad = uploadTensor(
          gpu,
          shards[u].subarray(segment.shardStart, segment.shardStart + segment.length),
          [segment.length],
        );
        const full = this.params.get(segment.name)!;
        // stage 0 updates in place (its one segment per parameter is the whole tensor)
        const param = st.param ??
          (options.stage === 0 ? full.reshape([full.size]) : this.#copyOut(full, segment));
        await adamwStep(gpu, { param, grad, m: st.m, v: st.v, clip }, {
          lr: hyper.lr,
          step: hyper.step,
          beta1: options.beta1,
          beta2: options.beta2,
          eps: options.eps,
          weightDecay: segment.decay ? options.weightDecay : 0,
        });
        grad.release();
        if (options.stage === 1 || options.stage === 2) out.push(param);
      }
      updated.push(out);
    }
    clip.release();
    if (options.stage === 3) {
      await this.#refreshHostShards();
      for (const u of [...this.#gathered]) {
        this.free(u);
        await this.gather(u); // a unit held across the step sees the new values
      }
    } else if (options.stage > 0) {
      await this.#gatherUpdated(updated);
    }
    return { gradNorm, scale };
  }

  /** Stages 1–2: brings the updated shards into every rank's full tensors. */
  async #gatherUpdated(updated: Tensor[][]): Promise<void> {
    const host = await downloadTensors(this.gpu, updated.flat());
    for (const t of updated.flat()) t.release();
    let k = 0;
    const full = await this.#gatherUnits(
      updated.map((list) => list.map(() => host[k++] as Float32Array)),
    );
    for (const [name, a] of full) writeTensor(this.params.get(name)!, a);
  }

  async #refreshHostShards(): Promise<void> {
    const host = await downloadTensors(this.gpu, this.#segments.flat().map((st) => st.param!));
    let k = 0;
    this.layout.units.forEach((_, u) => {
      const [s, e] = this.layout.shard(u);
      const shard = new Float32Array(e - s);
      for (const st of this.#segments[u]) {
        shard.set(host[k++] as Float32Array, st.segment.shardStart);
      }
      this.#hostShards[u] = shard;
    });
  }

  /** Global norm over the ranks' shards, identical on every rank. */
  async #globalNorm(shards: Float32Array[]): Promise<ZeroStepResult> {
    let ss = 0;
    for (const g of shards) for (let i = 0; i < g.length; i++) ss += g[i] * g[i];
    let total = ss;
    if (this.options.stage > 0 && this.comm.world > 1) {
      const hi = Math.fround(ss);
      const all = await this.comm.allGather(Float32Array.of(hi, ss - hi));
      total = 0;
      for (let r = 0; r < this.comm.world; r++) total += all[2 * r] + all[2 * r + 1];
    }
    const gradNorm = Math.sqrt(total);
    const max = this.options.clip;
    return { gradNorm, scale: max > 0 ? Math.min(1, max / (gradNorm + 1e-6)) : 1 };
  }

  /** A new tensor holding `segment` of the full parameter `full` (GPU copy). */
  #copyOut(full: Tensor, segment: ShardSegment): Tensor {
    const t = emptyTensor(this.gpu, [segment.length]);
    copyTensor(this.gpu, full.reshape([full.size]).rows(segment.paramStart, segment.length), t);
    return t;
  }

  #requireStage3(op: string): void {
    if (this.options.stage !== 3) {
      throw new Error(
        `ZeroOptimizer.${op}: only ZeRO-3 shards parameters (stage is ${this.options.stage})`,
      );
    }
  }

  /**
   * Full AdamW moments of every parameter (gathered from the shards; every rank gets all), for
   * checkpoints: name → `{ m, v }`.
   */
  async exportMoments(): Promise<Map<string, { m: Float32Array; v: Float32Array }>> {
    const segs = this.#segments.flat();
    const host = await downloadTensors(this.gpu, segs.flatMap((st) => [st.m, st.v]));
    const [m, v] = await Promise.all([0, 1].map((which) => {
      let k = which;
      return this.#gatherUnits(this.#segments.map((list) =>
        list.map(() => {
          const a = host[k] as Float32Array;
          k += 2;
          return a;
        })
      ));
    }));
    return new Map([...m].map(([name, a]) => [name, { m: a, v: v.get(name)! }]));
  }

  /** Sets the moments from full arrays (every rank passes the same); the inverse of export. */
  importMoments(get: (name: string) => { m: Float32Array; v: Float32Array }): void {
    for (const st of this.#segments.flat()) {
      const { name, paramStart, length } = st.segment;
      const full = get(name);
      writeTensor(st.m, full.m.subarray(paramStart, paramStart + length));
      writeTensor(st.v, full.v.subarray(paramStart, paramStart + length));
    }
  }

  /** ZeRO-3: the full parameters, gathered from the shards (every rank gets all). */
  exportParams(): Promise<Map<string, Float32Array>> {
    this.#requireStage3("exportParams");
    return this.#gatherUnits(null);
  }

  /** ZeRO-3: sets the parameter shards from full arrays (every rank passes the same). */
  async importParams(get: (name: string) => Float32Array): Promise<void> {
    this.#requireStage3("importParams");
    for (const st of this.#segments.flat()) {
      const { name, paramStart, length } = st.segment;
      writeTensor(st.param!, get(name).subarray(paramStart, paramStart + length));
    }
    await this.#refreshHostShards();
    for (const u of [...this.#gathered]) {
      this.free(u);
      await this.gather(u);
    }
  }

  /**
   * Gathers per-segment host arrays (`null`: ZeRO-3's host parameter shards) into full
   * arrays per parameter.
   */
  async #gatherUnits(parts: Float32Array[][] | null): Promise<Map<string, Float32Array>> {
    const { layout } = this;
    const shards = layout.units.map((_, u) => {
      if (!parts) return this.#hostShards[u];
      const [s, e] = layout.shard(u);
      const shard = new Float32Array(e - s);
      this.#segments[u].forEach((st, i) => shard.set(parts[u][i], st.segment.shardStart));
      return shard;
    });
    const full = layout.world === 1
      ? shards
      : await Promise.all(shards.map((shard, u) =>
        ringAllGather(this.comm, shard, {
          total: layout.units[u].size,
          pieceBytes: this.options.pieceBytes,
        })
      ));
    const out = new Map<string, Float32Array>();
    layout.units.forEach((unit, u) => {
      for (const e of unit.entries) out.set(e.name, full[u].slice(e.offset, e.offset + e.size));
    });
    return out;
  }

  /** Frees the optimizer's GPU tensors. */
  destroy(): void {
    for (const st of this.#segments.flat()) {
      st.m.release();
      st.v.release();
      st.param?.release();
    }
  }
}
