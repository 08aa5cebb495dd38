/**
 * Head split and merge (`shaders/heads.wgsl`): the model keeps activations in the token
 * layout `[B, n, D]` (D = H·hd), linear attention takes the head layout `[B, H, n, hd]`.
 *
 * - {@linkcode splitQkvu} cuts the fused projection `[B, n, 4D]` = `[q | k | v | u]` into
 *   q, k, v `[B, H, n, hd]` and the gate u `[B, n, D]`; {@linkcode mergeQkvu} is its backward.
 * - {@linkcode headsToTokens} `[B, H, n, hd] → [B, n, D]` (the attention output);
 *   {@linkcode tokensToHeads} is its inverse and its backward.
 *
 * The fused side may be a chunk of token rows (`rowOffset`, `rows`): a projection larger than
 * one storage binding is then produced and split, or merged and consumed, chunk by chunk.
 *
 * Pure data movement: outputs are written, never accumulated.
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import { linearWorkgroups } from "../../gpu/commands.ts";
import { shaderSource } from "../../gpu/shader_source.ts";
import { emptyTensor, type Tensor } from "../../gpu/tensor.ts";
import { describeShape, requireDistinct, requireShape } from "../_check.ts";

type Entry = "split_qkvu" | "merge_qkvu" | "heads_to_tokens" | "tokens_to_heads";

/** Sizes of the two layouts. */
export interface HeadDims {
  /** Sequences B. */
  batch: number;
  /** Tokens n. */
  length: number;
  /** Heads H. */
  heads: number;
  /** Width per head hd (D = heads · hd). */
  headDim: number;
}

function shapes(d: HeadDims) {
  const { batch: b, length: n, heads: h, headDim: hd } = d;
  for (const [key, value] of Object.entries({ batch: b, length: n, heads: h, headDim: hd })) {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`heads: ${key} = ${value} must be a positive integer`);
    }
  }
  return { fused: [b, n, 4 * h * hd], heads: [b, h, n, hd], tokens: [b, n, h * hd] };
}

async function launch(
  gpu: Gpu,
  entry: Entry,
  dims: HeadDims,
  bindings: Record<string, Tensor>,
  n: number,
  fusedRows: { row0: number; rows: number } = { row0: 0, rows: dims.batch * dims.length },
): Promise<void> {
  const kernel = await gpu.kernels.get({
    key: "heads",
    code: () => shaderSource("heads.wgsl"),
    entryPoint: entry,
  });
  const p = {
    batch: dims.batch,
    len: dims.length,
    heads: dims.heads,
    hd: dims.headDim,
    ...fusedRows,
  };
  gpu.commands.dispatch(kernel, {
    bindings: { p, ...bindings },
    workgroups: linearWorkgroups(n, 256, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
}

/** The parts of the fused projection. */
export interface QkvuParts {
  /** [B, H, n, hd] */
  q: Tensor;
  /** [B, H, n, hd] */
  k: Tensor;
  /** [B, H, n, hd] */
  v: Tensor;
  /** [B, n, D] */
  u: Tensor;
}

/**
 * Token rows `rowOffset … rowOffset + rows − 1` of the `B·n` rows of a fused projection: all of
 * them by default.
 */
export interface RowRange {
  /** First token row (b·n + t). Default 0. */
  rowOffset?: number;
  /** Rows in the chunk. Default: from `rowOffset` to the end. */
  rows?: number;
}

function rowRange(op: string, dims: HeadDims, range: RowRange): { row0: number; rows: number } {
  const total = dims.batch * dims.length;
  const row0 = range.rowOffset ?? 0;
  const rows = range.rows ?? total - row0;
  if (
    !Number.isInteger(row0) || !Number.isInteger(rows) || row0 < 0 || rows < 1 ||
    row0 + rows > total
  ) {
    throw new Error(
      `${op}: rows ${row0} … ${row0 + rows - 1} must lie within the ${total} token rows (B·n)`,
    );
  }
  return { row0, rows };
}

/** The fused tensor's expected shape: `[B, n, 4D]` (or `[B·n, 4D]`) whole, `[rows, 4D]` a chunk. */
function fusedShape(given: Tensor | undefined, whole: number[], rows: number): number[] {
  const [b, n, width] = whole;
  if (rows === b * n && (given === undefined || given.shape.length === 3)) return whole;
  return [rows, width];
}

/**
 * q, k, v `[B, H, n, hd]` and u `[B, n, D]` from the fused projection `[B, n, 4D]`, or from a
 * chunk `[rows, 4D]` of it written into `into` (the full q, k, v, u) at `rowOffset`.
 */
export async function splitQkvu(
  gpu: Gpu,
  fused: Tensor,
  dims: HeadDims & RowRange & { into?: QkvuParts },
): Promise<QkvuParts> {
  const s = shapes(dims);
  const op = "splitQkvu";
  const rows = dims.rows ?? (fused.shape.length === 2 ? fused.shape[0] : undefined);
  const range = rowRange(op, dims, { rowOffset: dims.rowOffset, rows });
  requireShape(op, "fused", fused, fusedShape(fused, s.fused, range.rows));
  const out = dims.into ?? {
    q: emptyTensor(gpu, s.heads),
    k: emptyTensor(gpu, s.heads),
    v: emptyTensor(gpu, s.heads),
    u: emptyTensor(gpu, s.tokens),
  };
  for (const name of ["q", "k", "v"] as const) requireShape(op, name, out[name], s.heads);
  requireShape(op, "u", out.u, s.tokens);
  requireDistinct(op, { fused, ...out });
  await launch(gpu, "split_qkvu", dims, { fused, ...out }, fused.size, range);
  return out;
}

/**
 * Backward of {@linkcode splitQkvu}: the gradient of the fused projection `[B, n, 4D]`, or of
 * its rows `rowOffset … rowOffset + rows − 1` (`[rows, 4D]`).
 */
export async function mergeQkvu(
  gpu: Gpu,
  grads: QkvuParts,
  dims: HeadDims & RowRange & { out?: Tensor },
): Promise<Tensor> {
  const s = shapes(dims);
  const op = "mergeQkvu";
  for (const name of ["q", "k", "v"] as const) requireShape(op, `d${name}`, grads[name], s.heads);
  requireShape(op, "du", grads.u, s.tokens);
  const range = rowRange(op, dims, dims);
  const fused = dims.out ?? emptyTensor(gpu, fusedShape(undefined, s.fused, range.rows));
  requireShape(op, "out", fused, fusedShape(fused, s.fused, range.rows));
  requireDistinct(op, { ...grads, out: fused });
  await launch(gpu, "merge_qkvu", dims, { fused, ...grads }, fused.size, range);
  return fused;
}

function move(op: string, to: "tokens" | "heads") {
  return async (gpu: Gpu, x: Tensor, dims: HeadDims): Promise<Tensor> => {
    const s = shapes(dims);
    const from = to === "tokens" ? "heads" : "tokens";
    if (x.dtype !== "f32" || x.size !== s[from].reduce((a, b) => a * b, 1)) {
      throw new Error(
        `${op}: input ${x.dtype} ${describeShape(x.shape)} must be f32 ${describeShape(s[from])}`,
      );
    }
    const out = emptyTensor(gpu, s[to]);
    const entry = to === "tokens" ? "heads_to_tokens" : "tokens_to_heads";
    await launch(gpu, entry, dims, { [from]: x, [to]: out }, x.size);
    return out;
  };
}

/** `[B, H, n, hd] → [B, n, D]`. */
export const headsToTokens: (gpu: Gpu, x: Tensor, dims: HeadDims) => Promise<Tensor> = move(
  "headsToTokens",
  "tokens",
);
/** `[B, n, D] → [B, H, n, hd]` (inverse and backward of {@linkcode headsToTokens}). */
export const tokensToHeads: (gpu: Gpu, x: Tensor, dims: HeadDims) => Promise<Tensor> = move(
  "tokensToHeads",
  "heads",
);
