/**
 * Gradient reduction over all W = DP × SP ranks (LASP.md §4: with sequence parallelism every
 * rank of an SP group holds a partial gradient of the same parameters, with data parallelism
 * every DP rank too), and the global gradient norm with its clip scale.
 *
 * ZeRO-0 (replicated optimizer): one flat buffer per step — one batched readback of every
 * gradient (and of small extras such as loss sums that ride along), one ring all-reduce, one
 * upload — then the norm in float64 on the host from the identical reduced values, so every
 * rank clips by the same scale. With one rank nothing leaves the GPU: the norm and scale are
 * computed there ({@linkcode gradNormClip}).
 *
 * ZeRO-1/2/3 take the other path of the trainer: `ZeroDriver` (lib/train/zero_driver.ts)
 * reduce-scatters buckets and updates only this rank's shards.
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { downloadTensors, type Tensor, uploadTensor } from "../gpu/tensor.ts";
import type { Communicator } from "../dist/communicator.ts";
import { ringAllReduce } from "../dist/ring.ts";
import { gradNormClip } from "../ops/adamw/adamw.ts";

/** What a reduction leaves for the optimizer. */
export interface ReducedGradients {
  /** `[norm, clip scale]` on the GPU, as `adamwStep` reads it. Release after the step. */
  clip: Tensor;
  /**
   * Host values when the reduction went through the host (W > 1): the norm and the extras
   * summed over all ranks. Absent with one rank: read `clip` and the extras from the GPU.
   */
  host?: { norm: number; extras: Float32Array[] };
}

/** Reduces gradients over every rank of the communicator's world (ZeRO stage 0). */
export class GradReducer {
  /** `maxNorm` 0: no clipping. */
  constructor(readonly comm: Communicator, readonly options: { maxNorm: number }) {}

  /**
   * Sums `grads` (in place, on the GPU) and `extras` over all ranks, and computes the global
   * norm and clip scale of the summed gradients.
   */
  async reduce(
    gpu: Gpu,
    grads: readonly Tensor[],
    extras: readonly Tensor[],
  ): Promise<ReducedGradients> {
    const maxNorm = this.options.maxNorm;
    if (this.comm.world === 1) return { clip: await gradNormClip(gpu, grads, { maxNorm }) };
    const all = [...grads, ...extras];
    const parts = (await downloadTensors(gpu, all)) as Float32Array[];
    const total = parts.reduce((n, p) => n + p.length, 0);
    const flat = new Float32Array(total);
    let offset = 0;
    for (const p of parts) {
      flat.set(p, offset);
      offset += p.length;
    }
    const summed = await ringAllReduce(this.comm, flat);
    gpu.commands.submit(); // the uploads below must follow everything recorded so far
    offset = 0;
    let ss = 0;
    const extrasOut: Float32Array[] = [];
    all.forEach((t, i) => {
      const n = parts[i].length;
      const values = summed.subarray(offset, offset + n);
      if (i < grads.length) {
        for (let j = 0; j < n; j++) ss += values[j] * values[j];
        gpu.device.queue.writeBuffer(
          t.buffer,
          0,
          summed.buffer as ArrayBuffer,
          summed.byteOffset + offset * 4,
          n * 4,
        );
      } else extrasOut.push(values.slice());
      offset += n;
    });
    const norm = Math.sqrt(ss);
    const scale = maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
    return { clip: uploadTensor(gpu, [norm, scale], [2]), host: { norm, extras: extrasOut } };
  }
}
