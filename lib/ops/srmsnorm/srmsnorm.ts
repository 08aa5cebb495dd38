/**
 * SRMSNorm (simple RMSNorm, TransNormerLLM): `y = x / sqrt(mean(x²) + eps)` over the last
 * dimension, optionally times a gain (TNL's own SRMSNorm has none). Forward and backward run
 * one workgroup per row (`shaders/srmsnorm.wgsl`); the forward saves `r = 1/rms` per row for
 * the backward. The gain gradient is a deterministic two-stage column reduction.
 *
 * Accumulation rule: activations (`y`, `dx`) are written; the parameter gradient `dgain` is
 * written, or added to with `accumulate` (gradient accumulation).
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import type { Kernel } from "../../gpu/kernel.ts";
import { emptyTensor, type Tensor } from "../../gpu/tensor.ts";
import { requireDistinct, requireShape, rowsOf } from "../_check.ts";
import { rowKernel, rowThreads, rowWorkgroups } from "../_rows.ts";

/** Default epsilon inside the square root. */
export const SRMSNORM_EPS = 1e-6;

/** The kernel of one entry point of `shaders/srmsnorm.wgsl`, with `wg` threads per row. */
export function srmsnormKernel(
  gpu: Gpu,
  entryPoint: string,
  options: { wg?: number; constants?: Record<string, number> } = {},
): Promise<Kernel> {
  return rowKernel(gpu, "srmsnorm.wgsl", entryPoint, options);
}

/** Options of {@linkcode srmsnormForward}. */
export interface SrmsnormOptions {
  /** Per-column gain `[d]`; none by default (TNL). */
  gain?: Tensor;
  /** Default {@linkcode SRMSNORM_EPS}. */
  eps?: number;
  /** Output `[..., d]`; default a new tensor. */
  out?: Tensor;
}

/** `y = x·r (·gain)`; returns y `[..., d]` and r `[rows]` (kept for the backward). */
export async function srmsnormForward(
  gpu: Gpu,
  x: Tensor,
  options: SrmsnormOptions = {},
): Promise<{ y: Tensor; rstd: Tensor }> {
  const op = "srmsnormForward";
  const [rows, d] = rowsOf(op, "x", x);
  if (options.gain) requireShape(op, "gain", options.gain, [d]);
  const y = options.out ?? emptyTensor(gpu, x.shape);
  requireShape(op, "out", y, x.shape);
  requireDistinct(op, { x, out: y, gain: options.gain });
  const rstd = emptyTensor(gpu, [rows]);
  const kernel = await srmsnormKernel(gpu, options.gain ? "fwd_gain" : "fwd", {
    wg: rowThreads(d),
  });
  const bindings: Record<string, Tensor | Record<string, number>> = {
    p: { rows, d, eps: options.eps ?? SRMSNORM_EPS, accumulate: 0 },
    x,
    y,
    rstd,
  };
  if (options.gain) bindings.gain = options.gain;
  gpu.commands.dispatch(kernel, { bindings, workgroups: rowWorkgroups(gpu, rows) });
  return { y, rstd };
}

/** What the backward needs from the forward, and the upstream gradient. */
export interface SrmsnormSaved {
  /** Forward input `[..., d]`. */
  x: Tensor;
  /** `r` per row from the forward, `[rows]`. */
  rstd: Tensor;
  /** Gradient of y, `[..., d]`. */
  dy: Tensor;
}

/** Options of {@linkcode srmsnormBackward}. */
export interface SrmsnormBackwardOptions {
  /** The forward's gain; with it, its gradient is computed too. */
  gain?: Tensor;
  /** Where the gain gradient goes `[d]`; default a new tensor. */
  dgain?: Tensor;
  /** Add to `dgain` instead of overwriting it. */
  accumulate?: boolean;
  /** dx `[..., d]`; default a new tensor. */
  out?: Tensor;
}

/** dx (and dgain with a gain) of {@linkcode srmsnormForward}. */
export async function srmsnormBackward(
  gpu: Gpu,
  saved: SrmsnormSaved,
  options: SrmsnormBackwardOptions = {},
): Promise<{ dx: Tensor; dgain?: Tensor }> {
  const op = "srmsnormBackward";
  const { x, rstd, dy } = saved;
  const { gain } = options;
  const [rows, d] = rowsOf(op, "x", x);
  requireShape(op, "dy", dy, x.shape);
  requireShape(op, "rstd", rstd, [rows]);
  if (gain) requireShape(op, "gain", gain, [d]);
  if (options.accumulate && !options.dgain) {
    throw new Error(`${op}: accumulate needs a dgain tensor to add to`);
  }
  const dx = options.out ?? emptyTensor(gpu, x.shape);
  requireShape(op, "out", dx, x.shape);
  requireDistinct(op, { x, dy, rstd, out: dx, gain, dgain: options.dgain });
  const p = { rows, d, eps: 0, accumulate: 0 };
  const kernel = await srmsnormKernel(gpu, gain ? "bwd_gain" : "bwd", { wg: rowThreads(d) });
  const bindings: Record<string, Tensor | Record<string, number>> = {
    p,
    x,
    dy,
    y: dx,
    rstd_in: rstd,
  };
  if (gain) bindings.gain = gain;
  gpu.commands.dispatch(kernel, { bindings, workgroups: rowWorkgroups(gpu, rows) });
  if (!gain) return { dx };
  const dgain = options.dgain ?? emptyTensor(gpu, [d]);
  requireShape(op, "dgain", dgain, [d]);
  await gainGradient(gpu, { x, rstd, dy, dgain }, { rows, d, accumulate: !!options.accumulate });
  return { dx, dgain };
}

/** Row blocks of the first reduction stage: enough columns×blocks to fill a GPU. */
function gainBlocks(rows: number): number {
  return Math.max(1, Math.min(rows, 128));
}

/** dgain[j] (+)= Σ_rows dy·x·r, in two deterministic stages. */
async function gainGradient(
  gpu: Gpu,
  t: { x: Tensor; rstd: Tensor; dy: Tensor; dgain: Tensor },
  dims: { rows: number; d: number; accumulate: boolean },
): Promise<void> {
  const { rows, d } = dims;
  const blocks = gainBlocks(rows);
  const partial = emptyTensor(gpu, [blocks, d]);
  const columns = Math.ceil(d / 256);
  gpu.commands.dispatch(await srmsnormKernel(gpu, "gain_partial"), {
    bindings: { p: { rows, d, eps: 0, accumulate: 0 }, dy: t.dy, x: t.x, rstd_in: t.rstd, partial },
    workgroups: [columns, blocks],
  });
  gpu.commands.dispatch(await srmsnormKernel(gpu, "gain_reduce"), {
    bindings: {
      p: { rows: blocks, d, eps: 0, accumulate: dims.accumulate ? 1 : 0 },
      partial_in: partial,
      dgain: t.dgain,
    },
    workgroups: [columns],
  });
  partial.release();
}
