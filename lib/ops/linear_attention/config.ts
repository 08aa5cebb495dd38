/**
 * Shapes, input validation and kernel-tile choice of the linear-attention op. Every check
 * throws one line naming the offending value and the rule.
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import type { Tensor } from "../../gpu/tensor.ts";
import {
  outputGeometry,
  outputSharedBytes,
  type OutputTile,
  validateOutputTile,
} from "../../../shaders/linear_attention/chunk_output.ts";
import {
  type StateTile,
  validateStateTile,
} from "../../../shaders/linear_attention/chunk_state.ts";
import type { IoType } from "../../../shaders/linear_attention/tiles.ts";

/** Sizes of one linear-attention call: q, k `[batch, heads, length, dk]`, v `[…, dv]`. */
export interface LaShape {
  /** Sequences B. */
  batch: number;
  /** Heads H (one decay each). */
  heads: number;
  /** Tokens N (any N ≥ 1). */
  length: number;
  /** Query/key width, 1 to 256. */
  dk: number;
  /** Value width, 1 to 256. */
  dv: number;
}

/** Per-head decay λ_h ∈ (0, 1] (1 = no decay), or one value for every head. */
export type Decay = number | readonly number[] | Float32Array;

/** Kernel tiling knobs (benchmarks); every field has a default chosen from the shape. */
export interface LaTuning {
  /** Tokens per chunk C: 32 or 64. Default 64. */
  chunk?: number;
  /** Output kernels: rows per thread (4 or 8). Default: by output width. */
  tm?: number;
  /** Output kernels: columns per thread (4, 8, 12 or 16). Default: by output width. */
  tn?: number;
  /** Staged reduction depth of the output kernels. Default 16 (8 if memory is short). */
  bk?: number;
  /** State kernels' tile. Default: by dk, dv. */
  stateTile?: StateTile;
  /**
   * Chunks walked in order by one chunk-state workgroup (1 to 16). Default: as many as leave
   * ≥ 512 workgroups.
   */
  partChunks?: number;
  /**
   * Bytes for one buffer of per-chunk states; longer sequences are processed in segments of
   * chunks that fit. Default 256 MiB (also capped by the device's binding size).
   */
  stateBudgetBytes?: number;
}

/** Largest dk, dv the kernels take. */
export const MAX_HEAD_DIM = 256;
/** Default per-chunk state buffer budget. */
export const DEFAULT_STATE_BUDGET = 256 * 1024 * 1024;

function isPositiveInt(x: unknown): x is number {
  return typeof x === "number" && Number.isInteger(x) && x >= 1;
}

/** Checks a shape; throws one line naming the bad field. */
export function validateShape(shape: LaShape): void {
  if (typeof shape !== "object" || shape === null) {
    throw new Error(`linear attention: shape must be { batch, heads, length, dk, dv }`);
  }
  for (const key of ["batch", "heads", "length", "dk", "dv"] as const) {
    if (!isPositiveInt(shape[key])) {
      throw new Error(`linear attention: shape.${key} = ${shape[key]} must be a positive integer`);
    }
  }
  for (const key of ["dk", "dv"] as const) {
    if (shape[key] > MAX_HEAD_DIM) {
      throw new Error(
        `linear attention: ${key} = ${shape[key]} exceeds the maximum ${MAX_HEAD_DIM}`,
      );
    }
  }
  if (shape.batch * shape.heads > 65535) {
    throw new Error(
      `linear attention: batch·heads = ${
        shape.batch * shape.heads
      } exceeds 65535 (one workgroup row each)`,
    );
  }
}

/** log2 λ_h per head (the kernels raise λ to powers with exp2). */
export function log2Decay(decay: Decay, heads: number): Float32Array {
  const values = typeof decay === "number" ? new Array(heads).fill(decay) : Array.from(decay);
  if (values.length !== heads) {
    throw new Error(
      `linear attention: decay has ${values.length} values, expected one per head (${heads}) or a single number`,
    );
  }
  return Float32Array.from(values, (lambda, h) => {
    if (!(typeof lambda === "number" && lambda > 0 && lambda <= 1)) {
      throw new Error(`linear attention: decay[${h}] = ${lambda} is outside (0, 1]`);
    }
    return Math.log2(lambda);
  });
}

/** Names a tensor's expected shape in errors. */
function dims(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Checks one input tensor against its expected shape and dtype. */
export function checkTensor(
  name: string,
  t: Tensor,
  expected: readonly number[],
  dtypes: readonly string[],
): void {
  const same = t.shape.length === expected.length && t.shape.every((d, i) => d === expected[i]);
  if (!same) {
    throw new Error(
      `linear attention: ${name} has shape ${dims(t.shape)}, expected ${dims(expected)}`,
    );
  }
  if (!dtypes.includes(t.dtype)) {
    throw new Error(
      `linear attention: ${name} has dtype ${t.dtype}, expected ${dtypes.join(" or ")}`,
    );
  }
}

/** Checks one host array's length against its expected shape. */
export function checkHost(name: string, a: ArrayLike<number>, expected: readonly number[]): void {
  const n = expected.reduce((x, y) => x * y, 1);
  if (a.length !== n) {
    throw new Error(
      `linear attention: ${name} has ${a.length} values, expected ${dims(expected)} = ${n}`,
    );
  }
}

/** Shapes of every tensor of a call. */
export function laShapes(s: LaShape): {
  qk: number[];
  v: number[];
  state: number[];
} {
  return {
    qk: [s.batch, s.heads, s.length, s.dk],
    v: [s.batch, s.heads, s.length, s.dv],
    state: [s.batch, s.heads, s.dk, s.dv],
  };
}

/** Reads the shape off q and v tensors `[B, H, N, dk]`, `[B, H, N, dv]`. */
export function shapeOf(q: Tensor, v: Tensor): LaShape {
  if (q.shape.length !== 4 || v.shape.length !== 4) {
    throw new Error(
      `linear attention: q and v must be [batch, heads, length, d], got q ${dims(q.shape)}, v ${
        dims(v.shape)
      }`,
    );
  }
  const [batch, heads, length, dk] = q.shape;
  return { batch, heads, length, dk, dv: v.shape[3] };
}

/** The storage type of q, k, v (and dO), which must agree. */
export function ioTypeOf(tensors: readonly (readonly [string, Tensor])[]): IoType {
  const io = tensors[0][1].dtype;
  if (io !== "f32" && io !== "f16") {
    throw new Error(`linear attention: ${tensors[0][0]} has dtype ${io}, expected f32 or f16`);
  }
  for (const [name, t] of tensors) {
    if (t.dtype !== io) {
      throw new Error(
        `linear attention: ${name} has dtype ${t.dtype} but ${
          tensors[0][0]
        } has ${io}: they must match`,
      );
    }
  }
  return io;
}

/** Checks that the device can run an f16 call. */
export function checkIo(gpu: Gpu, io: IoType): void {
  if (io === "f16" && !gpu.features.has("shader-f16")) {
    throw new Error(
      `linear attention: f16 tensors need the "shader-f16" feature, which ${gpu.adapterName} (${gpu.implementation}) lacks`,
    );
  }
}

/** The output tile for outputs of width n: explicit fields win, the rest by n and memory. */
export function chooseOutputTile(gpu: Gpu, n: number, tuning: LaTuning = {}): OutputTile {
  const chunk = tuning.chunk ?? 64;
  if (![32, 64].includes(chunk)) {
    throw new Error(`linear attention: chunk = ${chunk} must be 32 or 64`);
  }
  const maxShared = gpu.limits.maxComputeWorkgroupStorageSize;
  const target = Math.min(n <= 128 ? n : 256, chunk === 64 ? 256 : 128);
  const candidates: OutputTile[] = [];
  for (const tm of tuning.tm ? [tuning.tm] : [4, 8]) {
    for (const tn of tuning.tn ? [tuning.tn] : [4, 8, 16]) {
      for (const bk of tuning.bk ? [tuning.bk] : [16, 8]) {
        const t = { chunk, tm, tn, bk };
        try {
          validateOutputTile(t);
        } catch {
          continue;
        }
        if (tm * tn <= 64 && outputSharedBytes(t) <= maxShared) candidates.push(t);
      }
    }
  }
  if (candidates.length === 0) {
    throw new Error(
      `linear attention: no output tile fits chunk ${chunk}, tm ${tuning.tm}, tn ${tuning.tn}, bk ${tuning.bk} in ${maxShared} B of workgroup memory`,
    );
  }
  // Fewest columns ≥ target (else the widest), then square-ish per-thread tiles, then deep steps.
  const score = (t: OutputTile) => {
    const bn = outputGeometry(t).bn;
    return [bn >= target ? bn : 1e6 - bn, Math.abs(t.tm - t.tn), -t.bk];
  };
  candidates.sort((a, b) => {
    const sa = score(a), sb = score(b);
    for (let i = 0; i < sa.length; i++) if (sa[i] !== sb[i]) return sa[i] - sb[i];
    return 0;
  });
  return candidates[0];
}

/** The state-kernel tile for a [dk, dv] state. */
export function chooseStateTile(s: LaShape, tuning: LaTuning = {}): StateTile {
  if (tuning.stateTile) {
    validateStateTile(tuning.stateTile);
    return tuning.stateTile;
  }
  const side = (d: number) => (d > 64 ? 128 : d > 32 ? 64 : 32);
  const bm = side(s.dk), bn = side(s.dv);
  const tile = { bm, bn, tm: bm === 128 ? 8 : 4, tn: bn === 128 ? 8 : 4, bk: 16 };
  validateStateTile(tile);
  return tile;
}

/** Workgroups the chunk-state kernels should have at least (a big GPU has ≈132 SMs). */
const TARGET_STATE_WORKGROUPS = 512;

/**
 * Chunks per part (walked by one chunk-state workgroup) and per segment (whole parts whose
 * per-chunk states fit the budget and the device's binding size at once).
 */
export function partitioning(
  gpu: Gpu,
  s: LaShape,
  chunk: number,
  tuning: LaTuning = {},
): { partChunks: number; segChunks: number } {
  const chunks = Math.ceil(s.length / chunk);
  const bh = s.batch * s.heads;
  const st = chooseStateTile(s, tuning);
  const tiles = Math.ceil(s.dk / st.bm) * Math.ceil(s.dv / st.bn);
  const perChunk = bh * s.dk * s.dv * 4;
  const budget = Math.min(
    tuning.stateBudgetBytes ?? DEFAULT_STATE_BUDGET,
    gpu.limits.maxStorageBufferBindingSize,
    gpu.limits.maxBufferSize,
  );
  const fit = Math.max(1, Math.min(Math.floor(budget / perChunk), 65535));
  if (tuning.partChunks !== undefined && !isPositiveInt(tuning.partChunks)) {
    throw new Error(
      `linear attention: partChunks = ${tuning.partChunks} must be a positive integer`,
    );
  }
  const wanted = tuning.partChunks ??
    Math.floor(chunks / Math.ceil(TARGET_STATE_WORKGROUPS / (bh * tiles)));
  const partChunks = Math.max(1, Math.min(wanted, 16, fit));
  const segParts = Math.min(Math.floor(fit / partChunks), Math.ceil(chunks / partChunks));
  return { partChunks, segChunks: segParts * partChunks };
}
