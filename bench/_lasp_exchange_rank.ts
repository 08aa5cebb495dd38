/**
 * Rank function of bench/lasp_exchange.ts: times LASP layers (forward + backward through
 * `layers` layers) for each sequence length and exchange variant, and the bare state
 * exchange on the host (no GPU) for each variant.
 */
import {
  type Communicator,
  type Gpu,
  type GpuChoice,
  LaspAttention,
  type LaspMode,
  openDevice,
  type Tensor,
} from "../mod.ts";
import { emptyTensor } from "../lib/gpu/tensor.ts";
import { randomArray } from "../lib/testing/reference.ts";
import { median } from "./_timing.ts";

/** An exchange variant. */
export interface Variant {
  name: string;
  mode: LaspMode;
  overlap: boolean;
}

/** What every rank is told. */
export interface ExchangeArgs {
  gpu: GpuChoice;
  batch: number;
  heads: number;
  d: number;
  /** Total sequence lengths N (each rank holds N/T). */
  lengths: number[];
  variants: Variant[];
  layers: number;
  warmup: number;
  iters: number;
}

/** One rank's medians for one (N, variant). */
export interface RankRow {
  length: number;
  variant: string;
  /** Wall ms per layer of forward + backward (barrier to GPU idle, divided by layers). */
  layerMs: number;
  /** Ms per layer waiting for peers' states. */
  waitMs: number;
  bytesSent: number;
  messagesSent: number;
}

/** One rank's results. */
export interface RankReport {
  adapter: string;
  implementation: string;
  rows: RankRow[];
  /** Host-only exchange of one layer's state, one direction, per variant mode (ms). */
  hostMs: Record<string, number>;
}

/** Fills a tensor with values in [−1, 1)/√d from one repeated random block (fast for GiBs). */
function randomTensor(gpu: Gpu, shape: number[], seed: number, scale: number): Tensor {
  const t = emptyTensor(gpu, shape);
  const block = randomArray(1 << 20, seed).map((x) => x * scale);
  for (let offset = 0; offset < t.size; offset += block.length) {
    const n = Math.min(block.length, t.size - offset);
    gpu.device.queue.writeBuffer(t.buffer, offset * 4, block, 0, n);
  }
  return t;
}

async function timeLayers(
  gpu: Gpu,
  comm: Communicator,
  args: ExchangeArgs,
  length: number,
  variant: Variant,
): Promise<RankRow> {
  const { batch, heads, d, layers } = args;
  const n = length / comm.sp;
  const shape = { batch, heads, length: n, dk: d, dv: d };
  const dims = [batch, heads, n, d], scale = 1 / Math.sqrt(d);
  const [q, k, v, dO] = [1, 2, 3, 4].map((s) => randomTensor(gpu, dims, s, scale));
  const attn = new LaspAttention(comm, { mode: variant.mode, overlap: variant.overlap });
  const samples: { ms: number; wait: number; bytes: number; messages: number }[] = [];
  for (let it = 0; it < args.warmup + args.iters; it++) {
    await gpu.commands.finish();
    await comm.barrier({ group: "sp" });
    const t0 = performance.now();
    for (let layer = 0; layer < layers; layer++) {
      const { o } = await attn.forward(gpu, { q, k, v, decay: 0.99, shape, layer });
      o.release();
    }
    for (let layer = layers - 1; layer >= 0; layer--) {
      const g = await attn.backward(gpu, { dO, layer });
      for (const t of [g.dq, g.dk, g.dv]) t.release();
    }
    await gpu.commands.finish();
    const ms = performance.now() - t0;
    const c = attn.takeCounters();
    if (it >= args.warmup) {
      samples.push({
        ms: ms / layers,
        wait: c.waitMs / layers,
        bytes: c.bytesSent / layers,
        messages: c.messagesSent / layers,
      });
    }
  }
  for (const t of [q, k, v, dO]) t.release();
  return {
    length,
    variant: variant.name,
    layerMs: median(samples.map((s) => s.ms)),
    waitMs: median(samples.map((s) => s.wait)),
    bytesSent: Math.max(...samples.map((s) => s.bytes)),
    messagesSent: Math.max(...samples.map((s) => s.messages)),
  };
}

/**
 * The bare exchange of one layer's [B, H, d, d] state on the host. Ring: rank 0 starts the
 * chain forward, the last rank turns it back; half of rank 0's round trip is one direction
 * over T−1 hops (no clock skew between ranks). All-gather: the slowest rank's all-gather.
 */
async function hostExchange(
  comm: Communicator,
  args: ExchangeArgs,
  mode: LaspMode,
): Promise<number> {
  const T = comm.sp, t = comm.spRank, ranks = comm.groups.sp.ranks;
  if (T === 1) return 0;
  const state = randomArray(args.batch * args.heads * args.d * args.d, 9);
  const times: number[] = [];
  for (let it = 0; it < args.warmup + args.iters; it++) {
    await comm.barrier({ group: "sp" });
    const tag = { step: it, layer: 0, dir: 0 }, back = { step: it, layer: 0, dir: 1 };
    const t0 = performance.now();
    if (mode === "allgather") {
      await comm.allGather(state, { group: "sp", tag });
    } else {
      // forward: 0 → 1 → … → T−1; the last rank turns it around; backward: T−1 → … → 0
      const s = t === 0 ? state : await comm.recv(ranks[t - 1], tag);
      if (t < T - 1) comm.send(ranks[t + 1], tag, s, { transfer: t > 0 });
      const g = t === T - 1 ? s : await comm.recv(ranks[t + 1], back);
      if (t > 0) comm.send(ranks[t - 1], back, g, { transfer: true });
    }
    const ms = performance.now() - t0;
    const gathered = await comm.allGather(Float32Array.of(ms), { group: "sp" });
    if (it >= args.warmup) {
      times.push(mode === "allgather" ? Math.max(...gathered) : gathered[0] / 2);
    }
  }
  return median(times);
}

/** Rank function (spawnWorkerRanks). */
export async function exchangeRank(comm: Communicator, args: ExchangeArgs): Promise<RankReport> {
  const gpu = await openDevice({ gpu: args.gpu });
  const rows: RankRow[] = [];
  for (const length of args.lengths) {
    for (const variant of args.variants) {
      rows.push(await timeLayers(gpu, comm, args, length, variant));
    }
  }
  const hostMs: Record<string, number> = {};
  for (const mode of new Set(args.variants.map((v) => v.mode))) {
    hostMs[mode] = await hostExchange(comm, args, mode);
  }
  const report = { adapter: gpu.adapterName, implementation: gpu.implementation, rows, hostMs };
  gpu.destroy();
  return report;
}
