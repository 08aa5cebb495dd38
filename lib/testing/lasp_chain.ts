/**
 * The LASP validation workload (tests and bench/lasp_exchange.ts): two chained
 * linear-attention layers with an elementwise product between them (v of layer 1 = o of
 * layer 0 ⊙ w) and the loss Σ o_1 ⊙ r, run forward and backward on this rank's slice of the
 * sequence (`laspChain`, a rank function for spawnWorkerRanks), or on the whole sequence on
 * one device with the plain op (`referenceChain`).
 * @module
 */
import type { Communicator } from "../dist/communicator.ts";
import { downloadTensors, type Tensor, uploadTensor } from "../gpu/tensor.ts";
import { type Gpu, openDevice } from "../gpu/device.ts";
import { LaspAttention, type LaspCounters, type LaspMode } from "../lasp/attention.ts";
import { sequenceRange, sliceSequence } from "../lasp/split.ts";
import { linearAttention, linearAttentionBackward } from "../ops/linear_attention/mod.ts";
import { randomArray } from "./reference.ts";

let rankGpu: Promise<Gpu> | undefined;
/** The rank's device ($LASP_GPU picks the implementation), NaN-filling fresh buffers. */
function chainGpu(): Promise<Gpu> {
  rankGpu ??= openDevice({ nanFill: true });
  return rankGpu;
}

/** One chain to run: exchange variant and per-layer decays. */
export interface ChainCase {
  mode: LaspMode;
  overlap: boolean;
  /** Per layer: one λ per head. */
  decays: [number[], number[]];
}

/** Sizes of the workload; `local` tokens per rank, N = T·local. */
export interface ChainSizes {
  batch: number;
  heads: number;
  local: number;
  dk: number;
  dv: number;
  chunk: number;
}

/** Results of a chain: outputs and every gradient, [B, H, n, d] row-major. */
export type ChainResult = Record<
  "o0" | "o1" | "dq0" | "dk0" | "dv0" | "dq1" | "dk1" | "dv1",
  Float32Array
>;

/** The full-sequence inputs of case number `c` for sequence length `length`. */
export function chainInputs(c: number, s: ChainSizes, length: number) {
  const bh = s.batch * s.heads, seed = 1000 * c + length;
  const qk = bh * length * s.dk, v = bh * length * s.dv;
  return {
    q0: randomArray(qk, seed + 1),
    k0: randomArray(qk, seed + 2),
    v0: randomArray(v, seed + 3),
    q1: randomArray(qk, seed + 4),
    k1: randomArray(qk, seed + 5),
    w: randomArray(v, seed + 6, 0.5, 1.5),
    r: randomArray(v, seed + 7),
  };
}

function times(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((x, i) => x * b[i]);
}

/**
 * Runs every case on this rank's slice; returns local results and LASP traffic per case, and
 * which WebGPU implementation and adapter computed them.
 */
export async function laspChain(
  comm: Communicator,
  args: { sizes: ChainSizes; cases: ChainCase[] },
): Promise<{
  results: ChainResult[];
  counters: LaspCounters[];
  device: { implementation: string; adapter: string };
}> {
  const gpu = await chainGpu();
  const { sizes: s, cases } = args;
  const T = comm.sp, t = comm.spRank, length = T * s.local;
  const range = sequenceRange(length, T, t);
  const bh = s.batch * s.heads;
  const shape = { batch: s.batch, heads: s.heads, length: s.local, dk: s.dk, dv: s.dv };
  const qkDims = [s.batch, s.heads, s.local, s.dk], vDims = [s.batch, s.heads, s.local, s.dv];
  const results: ChainResult[] = [], counters: LaspCounters[] = [];
  for (const [c, kase] of cases.entries()) {
    const full = chainInputs(c, s, length);
    const mine = (a: Float32Array, inner: number) =>
      sliceSequence(a, { outer: bh, length, inner }, range);
    const x = {
      q0: mine(full.q0, s.dk),
      k0: mine(full.k0, s.dk),
      v0: mine(full.v0, s.dv),
      q1: mine(full.q1, s.dk),
      k1: mine(full.k1, s.dk),
      w: mine(full.w, s.dv),
      r: mine(full.r, s.dv),
    };
    const attn = new LaspAttention(comm, {
      mode: kase.mode,
      overlap: kase.overlap,
      tuning: { chunk: s.chunk },
    });
    const live: Tensor[] = [];
    const up = (a: Float32Array, dims: number[]) => {
      const tensor = uploadTensor(gpu, a, dims);
      live.push(tensor);
      return tensor;
    };
    const read = async (...ts: Tensor[]) => {
      live.push(...ts);
      return (await downloadTensors(gpu, ts)) as Float32Array[];
    };
    const [q0, k0, v0] = [up(x.q0, qkDims), up(x.k0, qkDims), up(x.v0, vDims)];
    const [o0] = await read(
      (await attn.forward(gpu, { q: q0, k: k0, v: v0, decay: kase.decays[0], shape, layer: 0 })).o,
    );
    const [q1, k1, v1] = [up(x.q1, qkDims), up(x.k1, qkDims), up(times(o0, x.w), vDims)];
    const [o1] = await read(
      (await attn.forward(gpu, { q: q1, k: k1, v: v1, decay: kase.decays[1], shape, layer: 1 })).o,
    );
    const g1 = await attn.backward(gpu, { dO: up(x.r, vDims), layer: 1 });
    const [dq1, dk1, dv1] = await read(g1.dq, g1.dk, g1.dv);
    const g0 = await attn.backward(gpu, { dO: up(times(dv1, x.w), vDims), layer: 0 });
    const [dq0, dk0, dv0] = await read(g0.dq, g0.dk, g0.dv);
    for (const tensor of live) tensor.release();
    results.push({ o0, o1, dq0, dk0, dv0, dq1, dk1, dv1 });
    counters.push(attn.takeCounters());
  }
  const device = { implementation: gpu.implementation, adapter: gpu.adapterName };
  return { results, counters, device };
}

/** The same chain on the whole sequence with the single-device op. */
export async function referenceChain(
  gpu: Gpu,
  c: number,
  kase: ChainCase,
  s: ChainSizes,
  length: number,
): Promise<ChainResult> {
  const x = chainInputs(c, s, length);
  const shape = { batch: s.batch, heads: s.heads, length, dk: s.dk, dv: s.dv };
  const tuning = { chunk: s.chunk };
  const common = { shape, tuning };
  const l0 = { q: x.q0, k: x.k0, v: x.v0, decay: kase.decays[0], ...common };
  const { o: o0 } = await linearAttention(gpu, l0);
  const l1 = { q: x.q1, k: x.k1, v: times(o0, x.w), decay: kase.decays[1], ...common };
  const { o: o1 } = await linearAttention(gpu, l1);
  const g1 = await linearAttentionBackward(gpu, { ...l1, dO: x.r });
  const g0 = await linearAttentionBackward(gpu, { ...l0, dO: times(g1.dv, x.w) });
  return { o0, o1, dq0: g0.dq, dk0: g0.dk, dv0: g0.dv, dq1: g1.dq, dk1: g1.dk, dv1: g1.dv };
}
