/**
 * Gradient reduction of the replicated optimizer (ZeRO-0) over all W = DP × SP ranks
 * (LASP.md §4: with sequence parallelism every rank of an SP group holds a partial gradient of
 * the same parameters, with data parallelism every DP rank too), and the global gradient norm
 * with its clip scale, left on the GPU for the AdamW kernel.
 *
 * The gradients travel as buckets of about `bucketMiB` in backward order
 * ({@linkcode BucketReducer}): each bucket is read back in one batch and ring-all-reduced as
 * soon as the last backward has finished its gradients, overlapping the rest of the backward,
 * and the sums are uploaded back. The ring gives every rank identical bits, so the norm
 * computed afterwards on each rank's GPU (deterministic two-stage reduction) is identical too.
 * With one rank nothing leaves the GPU.
 *
 * ZeRO-1/2/3 take the other path of the trainer: `ZeroDriver` (lib/train/zero_driver.ts)
 * reduce-scatters the same buckets and updates only this rank's shards.
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { Communicator } from "../dist/communicator.ts";
import { gradNormClip } from "../ops/adamw/adamw.ts";
import type { ParamSpec } from "../model/params.ts";
import { BucketReducer } from "./bucket_reducer.ts";
import { backwardOrder, bucketUnits, ZeroLayout } from "./zero_layout.ts";
import { DEFAULT_BUCKET_MIB } from "./zero_driver.ts";

/** Options of {@linkcode GradReducer}. */
export interface GradReducerOptions {
  /** Parameters in checkpoint order. */
  specs: readonly ParamSpec[];
  /** Global gradient-norm clip (0: off). */
  maxNorm: number;
  /** Bucket size, MiB. Default {@linkcode DEFAULT_BUCKET_MIB}. */
  bucketMiB?: number;
}

/** Sums gradients over every rank of the communicator's world (ZeRO stage 0). */
export class GradReducer {
  /** Buckets over the world (absent with one rank). */
  readonly layout: ZeroLayout | undefined;
  /** Each bucket's host buffer, reused from step to step (see BucketReducerOptions). */
  #hostBuffers: Float32Array[] = [];

  /** A reducer for `options.specs` over `comm`'s world. */
  constructor(readonly comm: Communicator, readonly options: GradReducerOptions) {
    if (comm.world > 1) {
      const flat = options.specs.map((s) => ({
        name: s.name,
        size: s.shape.reduce((a, b) => a * b, 1),
        decay: s.decay,
      }));
      const bytes = (options.bucketMiB ?? DEFAULT_BUCKET_MIB) * (1 << 20);
      this.layout = new ZeroLayout(bucketUnits(backwardOrder(flat), bytes), comm.world, comm.rank);
    }
  }

  /**
   * The step's reduction (none with one rank): call `markReady(name)` on it as each gradient
   * of the last micro-batch becomes final, then {@linkcode finish}.
   */
  start(gpu: Gpu, grads: ReadonlyMap<string, Tensor>): BucketReducer | undefined {
    if (!this.layout) return undefined;
    return new BucketReducer(gpu, this.comm, this.layout, grads, {
      mode: "all-reduce",
      writeBack: true,
      hostBuffers: this.#hostBuffers,
    });
  }

  /**
   * Waits for the sums (written into the gradient tensors) and returns `[norm, clip scale]`
   * of all gradients on the GPU (release it after the optimizer step).
   */
  async finish(
    gpu: Gpu,
    grads: ReadonlyMap<string, Tensor>,
    reducer: BucketReducer | undefined,
  ): Promise<Tensor> {
    if (reducer) await reducer.finish();
    const all = this.options.specs.map((s) => grads.get(s.name)!);
    return await gradNormClip(gpu, all, { maxNorm: this.options.maxNorm });
  }
}
