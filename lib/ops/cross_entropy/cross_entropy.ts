/**
 * Softmax cross-entropy on the GPU (`shaders/cross_entropy.wgsl`), numerically stable for any
 * vocabulary size, with an ignore index (default −100, as PyTorch).
 *
 * The forward returns per-row losses, the per-row log-sum-exp (so the backward needs no second
 * reduction), and `stats = [mean, count, sum]` over rows not ignored, all on the GPU (no
 * readback). The backward computes the gradient of `scale · mean`: `scale` is the caller's
 * factor (e.g. 1 / accumulation steps); the count comes from `stats` on the GPU.
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import { emptyTensor, type Tensor } from "../../gpu/tensor.ts";
import { describeShape, requireDistinct, requireShape } from "../_check.ts";
import { rowKernel, rowThreads, rowWorkgroups } from "../_rows.ts";
import { IGNORE_INDEX } from "./reference.ts";

export { IGNORE_INDEX } from "./reference.ts";

type Entry = "fwd" | "mean" | "bwd" | "bwd_inplace";

function kernel(gpu: Gpu, entryPoint: Entry, vocab: number) {
  return rowKernel(gpu, "cross_entropy.wgsl", entryPoint, { wg: rowThreads(vocab) });
}

function dims(op: string, logits: Tensor, targets: Tensor): { rows: number; vocab: number } {
  if (logits.dtype !== "f32" || logits.shape.length < 1) {
    throw new Error(
      `${op}: logits must be f32 [..., vocab], got ${logits.dtype} ${describeShape(logits.shape)}`,
    );
  }
  const vocab = logits.shape[logits.shape.length - 1];
  const rows = logits.size / vocab;
  if ((targets.dtype !== "u32" && targets.dtype !== "i32") || targets.size !== rows) {
    throw new Error(
      `${op}: targets must be ${rows} u32/i32 ids (one per row of logits ${
        describeShape(logits.shape)
      }), got ${targets.dtype} ${describeShape(targets.shape)}`,
    );
  }
  return { rows, vocab };
}

/** What {@linkcode crossEntropyForward} returns (all on the GPU). */
export interface CrossEntropyResult {
  /** Loss per row, 0 where ignored, `[rows]`. */
  losses: Tensor;
  /** Log-sum-exp per row (for the backward), `[rows]`. */
  lse: Tensor;
  /** `[mean, count, sum]` over rows not ignored (count as f32: exact below 2²⁴ rows). */
  stats: Tensor;
}

/** Losses of logits `[..., vocab]` against targets (one id per row). */
export async function crossEntropyForward(
  gpu: Gpu,
  inputs: { logits: Tensor; targets: Tensor },
  options: { ignoreIndex?: number } = {},
): Promise<CrossEntropyResult> {
  const op = "crossEntropyForward";
  const { logits, targets } = inputs;
  const { rows, vocab } = dims(op, logits, targets);
  requireDistinct(op, { logits, targets });
  const p = { rows, vocab, ignore_index: options.ignoreIndex ?? IGNORE_INDEX, scale: 0 };
  const losses = emptyTensor(gpu, [rows]), lse = emptyTensor(gpu, [rows]);
  const stats = emptyTensor(gpu, [3]);
  gpu.commands.dispatch(await kernel(gpu, "fwd", vocab), {
    bindings: { p, logits, targets, losses, lse },
    workgroups: rowWorkgroups(gpu, rows),
  });
  gpu.commands.dispatch(await kernel(gpu, "mean", vocab), {
    bindings: { p, targets, losses_in: losses, stats },
    workgroups: [1],
  });
  return { losses, lse, stats };
}

/** Options of {@linkcode crossEntropyBackward}. */
export interface CrossEntropyBackwardOptions {
  /** Gradient of the mean loss is multiplied by this. Default 1. */
  scale?: number;
  /** Default −100. Must match the forward. */
  ignoreIndex?: number;
  /** Overwrite the logits with their gradient instead of allocating `[rows, vocab]` more. */
  inPlace?: boolean;
  /** Where to write dlogits (not with `inPlace`). */
  out?: Tensor;
}

/** dlogits of `scale · mean loss`; with `inPlace`, the logits tensor itself is returned. */
export async function crossEntropyBackward(
  gpu: Gpu,
  saved: { logits: Tensor; targets: Tensor; lse: Tensor; stats: Tensor },
  options: CrossEntropyBackwardOptions = {},
): Promise<Tensor> {
  const op = "crossEntropyBackward";
  const { logits, targets, lse, stats } = saved;
  const { rows, vocab } = dims(op, logits, targets);
  requireShape(op, "lse", lse, [rows]);
  requireShape(op, "stats", stats, [3]);
  if (options.inPlace && options.out) throw new Error(`${op}: inPlace and out exclude each other`);
  const p = {
    rows,
    vocab,
    ignore_index: options.ignoreIndex ?? IGNORE_INDEX,
    scale: options.scale ?? 1,
  };
  const common = { p, targets, lse_in: lse, stats_in: stats };
  if (options.inPlace) {
    requireDistinct(op, { logits, targets, lse, stats });
    gpu.commands.dispatch(await kernel(gpu, "bwd_inplace", vocab), {
      bindings: { ...common, grad: logits },
      workgroups: rowWorkgroups(gpu, rows),
    });
    return logits;
  }
  const out = options.out ?? emptyTensor(gpu, logits.shape);
  requireShape(op, "out", out, logits.shape);
  requireDistinct(op, { logits, targets, lse, stats, out });
  gpu.commands.dispatch(await kernel(gpu, "bwd", vocab), {
    bindings: { ...common, logits, dlogits: out },
    workgroups: rowWorkgroups(gpu, rows),
  });
  return out;
}
