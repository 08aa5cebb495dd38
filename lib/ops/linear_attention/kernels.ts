/**
 * The linear-attention kernel family on the host side: a plan fixes the shape, storage type,
 * chunking and tiles of one call; the three dispatch helpers record the chunk-state, scan
 * and fused-output kernels for one segment of chunks.
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import { emptyTensor, type Tensor } from "../../gpu/tensor.ts";
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
  segmentChunks,
  validateShape,
} from "./config.ts";

/** Everything fixed for one call: shape, storage type, chunking, tiles, decay on the GPU. */
export interface LaPlan {
  gpu: Gpu;
  shape: LaShape;
  io: IoType;
  /** dk and dv multiples of 4: vec4 kernels. */
  vec: boolean;
  chunk: number;
  /** Chunks of the sequence, ⌈N / C⌉. */
  chunks: number;
  /** Chunks per segment (states of one segment are held at once). */
  segChunks: number;
  /** Segments, ⌈chunks / segChunks⌉. */
  segments: number;
  /** Output tiles for outputs of width dv (O, dV) and dk (dQ, dK). */
  tileV: OutputTile;
  tileK: OutputTile;
  stateTile: StateTile;
  /** [H] log2 λ_h. */
  log2Decay: Tensor;
}

/** A run of chunks [first, first + count). */
export interface Segment {
  first: number;
  count: number;
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
  // A fresh pool buffer has no recorded users, so a queue write needs no submit (writeTensor
  // would submit, splitting a profiled region and the caller's batch of work).
  const log2 = emptyTensor(gpu, [shape.heads]);
  gpu.device.queue.writeBuffer(
    log2.buffer,
    0,
    l2.buffer as ArrayBuffer,
    l2.byteOffset,
    l2.byteLength,
  );
  const tileV = chooseOutputTile(gpu, shape.dv, tuning);
  const chunk = tileV.chunk;
  const chunks = Math.ceil(shape.length / chunk);
  const segChunks = segmentChunks(gpu, shape, chunk, tuning);
  return {
    gpu,
    shape,
    io,
    vec: shape.dk % 4 === 0 && shape.dv % 4 === 0,
    chunk,
    chunks,
    segChunks,
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
  return { first, count: Math.min(plan.segChunks, plan.chunks - first) };
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
 * Records L_c = (Γ K_c)ᵀ V_c (`fwd`, a = K, b = V) or D_c = (Λ Q_c)ᵀ dO_c (`bwd`, a = Q,
 * b = dO) for the chunks of `seg` into `out` [BH, segChunks, dk, dv].
 */
export async function dispatchChunkStates(
  plan: LaPlan,
  kind: ChunkStateKind,
  io: { a: Tensor; b: Tensor; out: Tensor },
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
        chunkBase: seg.first,
        segChunks: plan.segChunks,
        m: shape.dk,
        n: shape.dv,
        tilesN,
      },
      decay: plan.log2Decay,
      ...io,
    },
    workgroups: [seg.count, bh(plan), Math.ceil(shape.dk / t.bm) * tilesN],
  });
}

/** Options of {@linkcode dispatchScan}. */
export interface ScanOptions {
  /** Reverse scan (gradients) instead of forward (states). */
  reverse: boolean;
  /** [BH, segChunks, dk, dv] contributions, replaced by prefixes when `writePrefix`. */
  buf: Tensor;
  /** Running value in and out: [.., BH, dk, dv] (offsets in elements). */
  carry: Tensor;
  hasInit: boolean;
  writePrefix: boolean;
  writeFinal: boolean;
  inOffset?: number;
  outOffset?: number;
  /** Chunks per batch·head in `buf`, when not the plan's segment size. */
  stride?: number;
  /** Chunk length and sequence length, when not the plan's (state propagation). */
  chunk?: number;
  seqLen?: number;
}

/** Records the scan over the chunks of `seg` (see shaders/linear_attention/state_scan.ts). */
export async function dispatchScan(plan: LaPlan, o: ScanOptions, seg: Segment): Promise<void> {
  const { gpu, shape } = plan;
  const key = stateScanKey(o.reverse);
  const kernel = await gpu.kernels.get({ key, code: () => stateScanWgsl(o.reverse) });
  const size = shape.dk * shape.dv;
  gpu.commands.dispatch(kernel, {
    label: key,
    bindings: {
      p: {
        seqLen: o.seqLen ?? shape.length,
        heads: shape.heads,
        chunk: o.chunk ?? plan.chunk,
        chunkBase: seg.first,
        segChunks: o.stride ?? plan.segChunks,
        count: seg.count,
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
  /** Per-chunk states of the segment [BH, segChunks, dk, dv]. */
  st: Tensor;
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
        d1,
        e: d1,
        n,
      },
      decay: plan.log2Decay,
      ...io,
    },
    workgroups: [seg.count, bh(plan), Math.ceil(n / outputGeometry(tile).bn)],
  });
}
