/**
 * Bucketed gradient reduction that overlaps the backward: the units of a
 * {@linkcode ZeroLayout} are the buckets. The backward calls `markReady(name)` as each
 * parameter's gradient becomes final; once every gradient of a bucket is, its download is
 * recorded and submitted right away and, when the bytes arrive, its ring all-reduce (or
 * reduce-scatter for ZeRO-2/3) starts — while the caller goes on recording the backward.
 * For an all-reduce with `writeBack`, each bucket's sums are written into its gradient
 * tensors as soon as its reduction ends; `finish()` waits for every bucket.
 *
 * Buckets start their collectives strictly in layout order (a bucket whose download finished
 * early waits for the ones before it), so every rank issues the same collectives in the same
 * order whatever the timing. Sums follow the ring's rounding (lib/dist/ring.ts).
 *
 * With `release`, a bucket's gradient tensors are handed back as soon as their download is
 * submitted: with reduce-scatter nothing reads them again, so ZeRO-2/3 need not hold the full
 * gradients once reduced. Gradients may then also be created after the reducer (by the backward's
 * first write); they must exist when their bucket starts.
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { downloadTensorsInto, type Tensor, writeTensor } from "../gpu/tensor.ts";
import type { Communicator } from "../dist/communicator.ts";
import { ringAllReduce, ringReduceScatter } from "../dist/ring.ts";
import type { ZeroLayout } from "./zero_layout.ts";

/** Options of {@linkcode BucketReducer}. */
export interface BucketReducerOptions {
  /** "all-reduce" (ZeRO-0/1: full sums) or "reduce-scatter" (ZeRO-2/3: this rank's shards). */
  mode: "all-reduce" | "reduce-scatter";
  /** With "all-reduce": write the sums back into the gradient tensors (per bucket, as each ends). Default true. */
  writeBack?: boolean;
  /** Message size of the ring, bytes. Default: the ring's. */
  pieceBytes?: number;
  /** Receive timeout, ms. Default: the communicator's. */
  timeoutMs?: number;
  /**
   * Called with a bucket's parameter names once its download is submitted, to free their
   * gradient tensors (only with "reduce-scatter", which writes nothing back).
   */
  release?: (names: string[]) => void;
  /**
   * With "all-reduce" and `writeBack`: host buffers by unit, kept by the caller from one step
   * to the next. A unit's download goes into its buffer (saving two fresh arrays and a copy per
   * step) and its sums, once written back, become its buffer for the next step; so the sums
   * that `finish()` returns are taken (detached) by the next reduction: copy what you keep.
   */
  hostBuffers?: Float32Array[];
}

/** One rank's result of a reduction: per unit, the full sum or this rank's shard of it. */
export interface ReducedGrads {
  /** "all-reduce": [unit.size] sums; "reduce-scatter": the shard `layout.shard(u)`. */
  units: Float32Array[];
}

/** Reduces the gradients of one optimizer step; make one per step (or call `finish` first). */
export class BucketReducer {
  #ready: Set<string>[];
  #started: boolean[];
  #results: (Promise<Float32Array> | undefined)[];
  #chain: Promise<unknown> = Promise.resolve();
  #waitMs = 0;

  /** A reducer of the gradient tensors `grads` (by parameter name) laid out by `layout`. */
  constructor(
    readonly gpu: Gpu,
    readonly comm: Communicator,
    readonly layout: ZeroLayout,
    readonly grads: ReadonlyMap<string, Tensor>,
    readonly options: BucketReducerOptions,
  ) {
    if (options.mode !== "all-reduce" && options.mode !== "reduce-scatter") {
      throw new Error(`Unknown reduction mode "${options.mode}": "all-reduce" or "reduce-scatter"`);
    }
    if (layout.world !== comm.world || layout.rank !== comm.rank) {
      throw new Error(
        `BucketReducer: layout of rank ${layout.rank}/${layout.world} on communicator rank ${comm.rank}/${comm.world}`,
      );
    }
    if (options.hostBuffers && (options.mode !== "all-reduce" || options.writeBack === false)) {
      throw new Error(`BucketReducer: hostBuffers needs mode "all-reduce" with writeBack`);
    }
    if (options.release && options.mode !== "reduce-scatter") {
      throw new Error(`BucketReducer: release needs mode "reduce-scatter", got "${options.mode}"`);
    }
    // gradients not created yet (lazily allocated ones) are checked when their bucket starts
    for (const [u, unit] of layout.units.entries()) {
      if (unit.entries.every((e) => grads.has(e.name))) this.#tensors(u);
    }
    this.#ready = layout.units.map(() => new Set());
    this.#started = layout.units.map(() => false);
    this.#results = layout.units.map(() => undefined);
  }

  /** Declares the gradient of `name` final; starts its bucket if it is complete. */
  markReady(name: string): void {
    const u = this.layout.unitOf(name);
    if (this.#ready[u].has(name)) throw new Error(`Gradient of ${name} marked ready twice`);
    this.#ready[u].add(name);
    if (this.#ready[u].size === this.layout.units[u].entries.length) this.#start(u);
  }

  /** Whether every bucket has started. */
  get allStarted(): boolean {
    return this.#started.every((s) => s);
  }

  /** Unit `u`'s gradient tensors, checked against the layout. */
  #tensors(u: number): Tensor[] {
    return this.layout.units[u].entries.map((e) => {
      const g = this.grads.get(e.name);
      if (!g || g.size !== e.size || g.dtype !== "f32") {
        throw new Error(
          `BucketReducer: gradient of ${e.name} must be an f32 tensor of ${e.size} elements, got ${
            g ? `${g.dtype} [${g.shape.join(", ")}]` : "nothing"
          }`,
        );
      }
      return g;
    });
  }

  #start(u: number): void {
    const unit = this.layout.units[u];
    this.#started[u] = true;
    const tensors = this.#tensors(u);
    const kept = this.options.hostBuffers?.[u];
    // a buffer of a failed step may have been detached (length 0) on its way to the ring
    const dest = kept?.length === unit.size ? kept : new Float32Array(unit.size);
    const at = unit.entries.map((e) => e.offset);
    const flat = downloadTensorsInto(this.gpu, tensors, dest, at); // recorded and submitted now
    // the copies are submitted, so later work reusing the buffers is queued after them
    this.options.release?.(unit.entries.map((e) => e.name));
    const ringOptions = {
      pieceBytes: this.options.pieceBytes,
      timeoutMs: this.options.timeoutMs,
      consume: true, // `flat` is ours: no copy
    };
    // the collective is called (its sequence number taken) after the previous bucket's
    const call = Promise.all([flat, this.#chain]).then(([data]) => ({
      result: this.options.mode === "all-reduce"
        ? ringAllReduce(this.comm, data, ringOptions)
        : ringReduceScatter(this.comm, data, ringOptions),
    }));
    this.#chain = call;
    const writeBack = this.options.mode === "all-reduce" && (this.options.writeBack ?? true);
    // sums go back to the GPU as each bucket finishes, beside the other buckets' reductions
    const result = call.then((c) => c.result).then((sum) => {
      if (writeBack) {
        for (const e of unit.entries) {
          writeTensor(this.grads.get(e.name)!, sum.subarray(e.offset, e.offset + e.size));
        }
        if (this.options.hostBuffers) this.options.hostBuffers[u] = sum; // written: reusable
      }
      return sum;
    });
    result.catch(() => {}); // reported by finish()
    this.#results[u] = result;
  }

  /** Waits for every bucket (all gradients must have been marked ready) and returns the sums. */
  async finish(): Promise<ReducedGrads> {
    const missing = this.layout.units.flatMap((unit, u) =>
      unit.entries.filter((e) => !this.#ready[u].has(e.name)).map((e) => e.name)
    );
    if (missing.length > 0) {
      throw new Error(
        `BucketReducer.finish: ${missing.length} gradient(s) never marked ready: ${
          missing.slice(0, 5).join(", ")
        }${missing.length > 5 ? ", …" : ""}`,
      );
    }
    const start = performance.now();
    const units = await Promise.all(this.#results as Promise<Float32Array>[]);
    this.#waitMs = performance.now() - start;
    return { units };
  }

  /**
   * Milliseconds `finish()` waited for reductions still running when it was called: the part
   * of the reduction that the rest of the backward did not hide.
   */
  get waitMs(): number {
    return this.#waitMs;
  }
}
