/**
 * The LM head and the loss, forward and backward fused per chunk of rows:
 *
 *     logits_c = hf_c · Wᵀ          [r, V]
 *     loss     = lossScale · Σ_rows CE(logits, target)
 *     dW      += dlogits_cᵀ · hf_c   dhf_c = dlogits_c · W
 *
 * The loss scale is known before the forward (the trainer counts the global targets first),
 * so each chunk's gradient is taken right after its loss and the logits are never all alive:
 * memory is one chunk of [r, V] instead of [B·n, V] (at V = 50257 and 32K tokens per rank
 * that is 6.6 GB saved). Without gradients only the losses are computed.
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { copyTensor, emptyTensor, type Tensor, uploadTensor } from "../gpu/tensor.ts";
import { crossEntropyBackward, crossEntropyForward } from "../ops/cross_entropy/cross_entropy.ts";
import { linear, linearBackward } from "./block.ts";

/** Default bytes of one chunk of logits. */
export const LOGITS_CHUNK_BYTES = 256 * 1024 * 1024;

/** Rows per chunk for `vocab` columns within `bytes`. */
export function logitsChunkRows(vocab: number, bytes = LOGITS_CHUNK_BYTES): number {
  return Math.max(1, Math.floor(bytes / (4 * vocab)));
}

/** Options of {@linkcode lossHead}. */
export interface LossHeadOptions {
  /** Rows per chunk. */
  chunkRows: number;
  /** With gradients: the loss is `lossScale · Σ token losses`; dW is added to `dweight`. */
  grad?: { lossScale: number; dweight: Tensor };
}

/**
 * Loss statistics `[mean, count, sum]` per chunk (on the GPU; sum them for the total) and,
 * with `grad`, dhf [rows, D] of the scaled loss.
 */
export async function lossHead(
  gpu: Gpu,
  inputs: { hf: Tensor; weight: Tensor; targets: Uint32Array },
  options: LossHeadOptions,
): Promise<{ stats: Tensor[]; dhf?: Tensor }> {
  const { hf, weight, targets } = inputs; // hf [rows, D], weight [V, D]
  const [rows, width] = hf.shape;
  const chunk = options.chunkRows;
  if (!Number.isInteger(chunk) || chunk < 1) {
    throw new Error(`lossHead: chunkRows ${chunk} must be a positive integer`);
  }
  if (targets.length !== rows) {
    throw new Error(`lossHead: ${targets.length} targets for ${rows} rows`);
  }
  const whole = chunk >= rows;
  const dhf = options.grad ? emptyTensor(gpu, [rows, width]) : undefined;
  const stats: Tensor[] = [];
  for (let start = 0; start < rows; start += chunk) {
    const r = Math.min(chunk, rows - start);
    let h = hf; // [r, D]
    if (!whole) {
      h = emptyTensor(gpu, [r, width]);
      copyTensor(gpu, hf.rows(start, r), h);
    }
    const t = uploadTensor(gpu, targets.subarray(start, start + r), [r], "u32");
    const logits = await linear(gpu, h, weight); // [r, V]
    const ce = await crossEntropyForward(gpu, { logits, targets: t });
    ce.losses.release();
    stats.push(ce.stats);
    if (options.grad && dhf) {
      // d(scale·sum) = d(scale·count·mean): the kernel divides by the count itself
      const dlogits = await crossEntropyBackward(
        gpu,
        { logits, targets: t, lse: ce.lse, stats: ce.stats },
        { scale: options.grad.lossScale * r, inPlace: true },
      ); // [r, V]
      const dh = await linearBackward(gpu, {
        x: h,
        w: weight,
        dy: dlogits,
        dw: options.grad.dweight,
      }); // [r, D]
      copyTensor(gpu, dh, dhf.rows(start, r));
      dh.release();
    }
    logits.release();
    ce.lse.release();
    t.release();
    if (!whole) h.release();
    gpu.commands.submit(); // frees this chunk's logits for the next one
  }
  return { stats, dhf };
}
