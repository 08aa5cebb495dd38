/**
 * The linear-attention kernel family on the host side: a plan fixes the shape, storage type,
 * chunking (chunks → parts → segments) and tiles of one call; the dispatch helpers record the
 * chunk-state, scan and fused-output kernels for one segment.
 *
 * A part is `partChunks` chunks walked in order by one chunk-state workgroup; a segment is the
 * run of whole parts whose per-chunk states are held at once (bounded by the state budget).
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import { emptyTensor, type Tensor, uploadTensor } from "../../gpu/tensor.ts";
import {
  outputGeometry,
  outputKey,
  type OutputKind,
  type OutputTile,
  outputWgsl,
} from "../../../shaders/linear_attention/chunk_output.ts";
import {
  chunkStateKey,
  type ChunkStateKind,
  chunkStateWgsl,
  type StateTile,
} from "../../../shaders/linear_attention/chunk_state.ts";
import {
  SCAN_THREADS,
  stateScanKey,
  stateScanWgsl,
} from "../../../shaders/linear_attention/state_scan.ts";
import type { IoType } from "../../../shaders/linear_attention/tiles.ts";
import {
  checkIo,
  chooseOutputTile,
  chooseStateTile,
  type Decay,
  type LaShape,
  type LaTuning,
  log2Decay,
  partitioning,
  validateShape,
} from "./config.ts";

/** Everything fixed for one call: shape, storage type, partitioning, tiles, decay on the GPU. */
export interface LaPlan {
  gpu: Gpu;
  shape: LaShape;
  io: IoType;
  /** dk and dv multiples of 4: vec4 kernels. */
  vec: boolean;
  chunk: number;
  /** Chunks of the sequence, ⌈N / C⌉. */
  chunks: number;
  /** Chunks per part. */
  partChunks: number;
  /** Chunks per segment (a multiple of partChunks). */
  segChunks: number;
  /** Parts per segment. */
  segParts: number;
  /** Segments, ⌈chunks / segChunks⌉. */
  segments: number;
  /** Output tiles for outputs of width dv (O, dV) and dk (dQ, dK). */
  tileV: OutputTile;
  tileK: OutputTile;
  stateTile: StateTile;
  /** [H] log2 λ_h. */
  log2Decay: Tensor;
}

/** Chunks [first, first + count) = parts [firstPart, firstPart + parts) of one segment. */
export interface Segment {
  first: number;
  count: number;
  firstPart: number;
  parts: number;
}

/** Builds the plan of one call (validating shape and decay); release with {@linkcode releasePlan}. */
export function makePlan(
  gpu: Gpu,
  shape: LaShape,
  io: IoType,
  decay: Decay,
  tuning: LaTuning = {},
): LaPlan {
  validateShape(shape);
  checkIo(gpu, io);
  const l2 = log2Decay(decay, shape.heads);
  const tileV = chooseOutputTile(gpu, shape.dv, tuning);
  const chunk = tileV.chunk;
  const chunks = Math.ceil(shape.length / chunk);
  const { partChunks, segChunks } = partitioning(gpu, shape, chunk, tuning);
  const log2 = uploadTensor(gpu, l2, [shape.heads]); // no submit: keeps the caller's batch whole
  return {
    gpu,
    shape,
    io,
    vec: shape.dk % 4 === 0 && shape.dv % 4 === 0,
    chunk,
    chunks,
    partChunks,
    segChunks,
    segParts: segChunks / partChunks,
    segments: Math.ceil(chunks / segChunks),
    tileV,
    tileK: chooseOutputTile(gpu, shape.dk, tuning),
    stateTile: chooseStateTile(shape, tuning),
    log2Decay: log2,
  };
}

/** Returns the plan's GPU memory to the pool. */
export function releasePlan(plan: LaPlan): void {
  plan.log2Decay.release();
}

/** Segment `i` of the plan. */
export function segment(plan: LaPlan, i: number): Segment {
  const first = i * plan.segChunks;
  const count = Math.min(plan.segChunks, plan.chunks - first);
  return {
    first,
    count,
    firstPart: first / plan.partChunks,
    parts: Math.ceil(count / plan.partChunks),
  };
}

/** Buffers of one segment's states: part-local prefixes per chunk and one value per part. */
export interface StateBuffers {
  /** [BH, segChunks, dk, dv]: P_c, the part-local prefix of each chunk. */
  prefix: Tensor;
  /** [BH, segParts, dk, dv]: part totals, replaced by each part's incoming value by the scan. */
  parts: Tensor;
}

/** Allocates the state buffers of one direction. */
export function stateBuffers(plan: LaPlan, withPrefix = true): StateBuffers {
  const { gpu, shape: s } = plan;
  const bh = s.batch * s.heads;
  return {
    // unused without prefixes: one value (it binds the 16 bytes of one vec4, see commands.ts)
    prefix: emptyTensor(gpu, withPrefix ? [bh, plan.segChunks, s.dk, s.dv] : [1]),
    parts: emptyTensor(gpu, [bh, plan.segParts, s.dk, s.dv]),
  };
}

/** Returns state buffers to the pool. */
export function releaseStates(b: StateBuffers): void {
  b.prefix.release();
  b.parts.release();
}

/** Batch·heads. */
function bh(plan: LaPlan): number {
  return plan.shape.batch * plan.shape.heads;
}

/** Label for the profiler: the kernel name without its tile suffix. */
function label(key: string): string {
  return key.slice(0, key.indexOf(":"));
}

/**
 * Records the chunk-state kernel over the parts of `seg`: `fwd` with a = K, b = V (states S),
 * `bwd` with a = Q, b = dO (state gradients G); part totals always, prefixes if `writePrefix`.
 */
export async function dispatchChunkStates(
  plan: LaPlan,
  kind: ChunkStateKind,
  io: { a: Tensor; b: Tensor; states: StateBuffers; writePrefix: boolean },
  seg: Segment,
): Promise<void> {
  const { gpu, shape, stateTile: t } = plan;
  const config = { ...t, kind, io: plan.io, vec: plan.vec };
  const key = chunkStateKey(config);
  const kernel = await gpu.kernels.get({ key, code: () => chunkStateWgsl(config) });
  const tilesN = Math.ceil(shape.dv / t.bn);
  gpu.commands.dispatch(kernel, {
    label: label(key),
    bindings: {
      p: {
        seqLen: shape.length,
        heads: shape.heads,
        chunk: plan.chunk,
        partChunks: plan.partChunks,
        firstPart: seg.firstPart,
        segChunks: plan.segChunks,
        segParts: plan.segParts,
        m: shape.dk,
        n: shape.dv,
        tilesN,
        writePrefix: io.writePrefix ? 1 : 0,
      },
      decay: plan.log2Decay,
      a: io.a,
      b: io.b,
      prefix: io.states.prefix,
      total: io.states.parts,
    },
    workgroups: [seg.parts, bh(plan), Math.ceil(shape.dk / t.bm) * tilesN],
  });
}

/** Options of {@linkcode dispatchScan}. */
export interface ScanOptions {
  /** Reverse scan (gradients) instead of forward (states). */
  reverse: boolean;
  /** [BH, stride, dk, dv] contributions, replaced by prefixes when `writePrefix`. */
  buf: Tensor;
  /** Running value in and out: [.., BH, dk, dv] (offsets in elements). */
  carry: Tensor;
  hasInit: boolean;
  writePrefix: boolean;
  writeFinal: boolean;
  inOffset?: number;
  outOffset?: number;
}

/** Records the scan over the parts of `seg` (see shaders/linear_attention/state_scan.ts). */
export function dispatchScan(plan: LaPlan, o: ScanOptions, seg: Segment): Promise<void> {
  const partTokens = plan.partChunks * plan.chunk;
  return scanSteps(plan, o, {
    first: seg.firstPart,
    count: seg.parts,
    stride: plan.segParts,
    tokens: partTokens,
    seqLen: plan.shape.length,
  });
}

/**
 * Records a scan over `count` steps of `tokens` tokens each (the last one cut at `seqLen`):
 * value ← λ^len · value + buf[step].
 */
export async function scanSteps(
  plan: LaPlan,
  o: ScanOptions,
  steps: { first: number; count: number; stride: number; tokens: number; seqLen: number },
): Promise<void> {
  const { gpu, shape } = plan;
  const key = stateScanKey(o.reverse);
  const kernel = await gpu.kernels.get({ key, code: () => stateScanWgsl(o.reverse) });
  const size = shape.dk * shape.dv;
  gpu.commands.dispatch(kernel, {
    label: key,
    bindings: {
      p: {
        seqLen: steps.seqLen,
        heads: shape.heads,
        chunk: steps.tokens,
        chunkBase: steps.first,
        segChunks: steps.stride,
        count: steps.count,
        size,
        hasInit: o.hasInit ? 1 : 0,
        writePrefix: o.writePrefix ? 1 : 0,
        writeFinal: o.writeFinal ? 1 : 0,
        inOffset: o.inOffset ?? 0,
        outOffset: o.outOffset ?? 0,
      },
      decay: plan.log2Decay,
      buf: o.buf,
      carry: o.carry,
    },
    workgroups: [Math.ceil(size / SCAN_THREADS), bh(plan)],
  });
}

/** Operands of one fused output kernel (table in shaders/linear_attention/chunk_output.ts). */
export interface OutputOperands {
  xl: Tensor;
  xr: Tensor;
  a3: Tensor;
  b1: Tensor;
  /** The segment's states after the scan: S for O and dQ, G for dK and dV. */
  states: StateBuffers;
  out: Tensor;
}

/** Records one fused output kernel (O, dQ, dK or dV) for the chunks of `seg`. */
export async function dispatchOutput(
  plan: LaPlan,
  kind: OutputKind,
  io: OutputOperands,
  seg: Segment,
): Promise<void> {
  const { gpu, shape } = plan;
  // O, dV have width dv and reduce the scores over dk; dQ, dK the other way round.
  const valueSide = kind === "fwd_o" || kind === "bwd_dv";
  const tile = valueSide ? plan.tileV : plan.tileK;
  const [d1, n] = valueSide ? [shape.dk, shape.dv] : [shape.dv, shape.dk];
  const config = { ...tile, kind, io: plan.io, vec: plan.vec };
  const key = outputKey(config);
  const kernel = await gpu.kernels.get({ key, code: () => outputWgsl(config) });
  gpu.commands.dispatch(kernel, {
    label: label(key),
    bindings: {
      p: {
        seqLen: shape.length,
        heads: shape.heads,
        chunkBase: seg.first,
        segChunks: plan.segChunks,
        partChunks: plan.partChunks,
        segParts: plan.segParts,
        d1,
        e: d1,
        n,
      },
      decay: plan.log2Decay,
      xl: io.xl,
      xr: io.xr,
      a3: io.a3,
      b1: io.b1,
      st: io.states.prefix,
      sp: io.states.parts,
      out: io.out,
    },
    workgroups: [seg.count, bh(plan), Math.ceil(n / outputGeometry(tile).bn)],
  });
}
