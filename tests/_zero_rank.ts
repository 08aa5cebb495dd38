/**
 * Rank function of the bucket-reducer and ZeRO tests: bucketed reduction of seeded per-rank
 * gradients while GPU work keeps being recorded, and three AdamW steps at every ZeRO stage.
 */
import type { Communicator } from "../lib/dist/communicator.ts";
import { openDevice } from "../lib/gpu/device.ts";
import { downloadTensors, emptyTensor, type Tensor, uploadTensor } from "../lib/gpu/tensor.ts";
import { fill } from "../lib/ops/activation/activation.ts";
import { randomArray } from "../lib/testing/reference.ts";
import { BucketReducer } from "../lib/train/bucket_reducer.ts";
import { reductionMode, ZeroOptimizer, type ZeroStage } from "../lib/train/zero.ts";
import {
  backwardOrder,
  bucketUnits,
  type FlatParam,
  layerUnits,
  ZeroLayout,
} from "../lib/train/zero_layout.ts";

/** Odd sizes; names shaped like the model's so that layerUnits groups them. */
export const PARAMS: (FlatParam & { shape: number[] })[] = [
  { name: "embed.weight", size: 257, decay: true, shape: [257] },
  { name: "layers.0.norm", size: 13, decay: false, shape: [13] },
  { name: "layers.0.w", size: 1001, decay: true, shape: [7, 143] },
  { name: "layers.1.norm", size: 1, decay: false, shape: [1] },
  { name: "layers.1.w", size: 777, decay: true, shape: [777] },
  { name: "final.norm", size: 31, decay: false, shape: [31] },
];
/** Small buckets: several per step, one parameter larger than a bucket. */
export const BUCKET_BYTES = 2048;
export const HYPER = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 10 };
export const LR = [0, 1e-2, 2e-2, 5e-3];
export const STEPS = 3;

/** Gradient of `param` on `rank` at `step` (integer-valued for the exact reduction case). */
export function gradOf(p: number, rank: number, step: number, integer = false): Float32Array {
  const g = randomArray(PARAMS[p].size, 1009 * step + 101 * rank + p + 1, -1, 1);
  return integer ? g.map((v) => Math.round(v * 64) || 0) : g;
}

/** Initial parameter values (identical on every rank). */
export function initOf(p: number): Float32Array {
  return randomArray(PARAMS[p].size, 7 + p, -1, 1);
}

function upload(gpu: Awaited<ReturnType<typeof openDevice>>, f: (p: number) => Float32Array) {
  return new Map<string, Tensor>(PARAMS.map((p, i) => [p.name, uploadTensor(gpu, f(i), p.shape)]));
}

/** Waits until the reducer has sent ring messages: the first bucket runs before the rest is marked. */
async function firstBucketSends(comm: Communicator): Promise<void> {
  const deadline = performance.now() + 20_000;
  while (comm.counters.messagesSent === 0) {
    if (performance.now() > deadline) {
      throw new Error(
        `rank ${comm.rank}: the first bucket did not start before the others were ready`,
      );
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Results keyed `bucket/<mode>/<int|float>/<name or unit>` and `zero<s>/...`. */
export async function zeroCases(comm: Communicator): Promise<Record<string, Float32Array>> {
  const gpu = await openDevice({ nanFill: true });
  const out: Record<string, Float32Array> = {};
  const W = comm.world, rank = comm.rank;
  const order = backwardOrder(PARAMS);
  // bucketed reduction, with GPU work recorded between the markReady calls
  const scratch = emptyTensor(gpu, [4096]);
  for (const variant of ["all-reduce", "reduce-scatter", "all-reduce, reused host buffers"]) {
    const mode = variant === "reduce-scatter" ? "reduce-scatter" : "all-reduce";
    // host buffers kept from an earlier reduction of other gradients (as from step to step)
    const hostBuffers: Float32Array[] | undefined = variant.includes("reused") ? [] : undefined;
    for (const integer of [true, false]) {
      const key = `bucket/${hostBuffers ? "reused" : mode}/${integer ? "int" : "float"}`;
      const layout = new ZeroLayout(bucketUnits(order, BUCKET_BYTES), W, rank);
      if (hostBuffers) {
        const earlier = upload(gpu, (p) => gradOf(p, rank, 1, integer));
        const r = new BucketReducer(gpu, comm, layout, earlier, { mode, hostBuffers });
        for (const p of order) r.markReady(p.name);
        await r.finish();
        for (const t of earlier.values()) t.release();
        if (hostBuffers.filter((h) => h.length > 0).length !== layout.units.length) {
          throw new Error("every unit's sums should be kept for reuse");
        }
      }
      const grads = upload(gpu, (p) => gradOf(p, rank, 0, integer));
      // reduce-scatter frees each bucket's gradients once its download is submitted (ZeRO-2/3);
      // the "backward" below then reuses those buffers for junk, which must not reach the sums
      const released: string[] = [];
      const release = mode === "reduce-scatter"
        ? (names: string[]) => {
          for (const n of names) {
            grads.get(n)!.release();
            grads.delete(n);
            released.push(n);
          }
        }
        : undefined;
      const reducer = new BucketReducer(gpu, comm, layout, grads, {
        mode,
        pieceBytes: 512,
        release,
        hostBuffers,
      });
      const first = layout.units[0].entries.length;
      comm.takeCounters();
      for (const [i, p] of order.entries()) {
        await fill(gpu, scratch, { value: 1 }); // "the backward goes on"
        reducer.markReady(p.name);
        if (release) {
          const junk = emptyTensor(gpu, [p.size]);
          await fill(gpu, junk, { value: 1e30 });
          junk.release();
        }
        if (i === first - 1) await firstBucketSends(comm);
      }
      const { units } = await reducer.finish();
      if (release && (grads.size !== 0 || released.length !== PARAMS.length)) {
        throw new Error(`release freed ${released.length} of ${PARAMS.length} gradients`);
      }
      // with reused host buffers the next reduction takes (and detaches) the returned sums
      units.forEach((u, i) => (out[`${key}/unit${i}`] = hostBuffers ? u.slice() : u));
      if (mode === "all-reduce") {
        const got = await downloadTensors(gpu, PARAMS.map((p) => grads.get(p.name)!));
        PARAMS.forEach((p, i) => (out[`${key}/${p.name}`] = got[i] as Float32Array));
      }
      for (const t of grads.values()) t.release();
    }
  }
  scratch.release();
  // AdamW steps at every stage
  for (const stage of [0, 1, 2, 3] as ZeroStage[]) {
    const units = stage === 3 ? layerUnits(PARAMS) : bucketUnits(order, BUCKET_BYTES);
    const layout = stage === 0 ? new ZeroLayout(units, 1, 0) : new ZeroLayout(units, W, rank);
    const params = upload(gpu, initOf);
    const opt = await ZeroOptimizer.create(gpu, comm, {
      layout,
      params,
      options: { stage, ...HYPER, pieceBytes: 1024 },
    });
    const reduceLayout = new ZeroLayout(units, W, rank);
    const norms: number[] = [];
    for (let step = 1; step <= STEPS; step++) {
      if (stage === 3) {
        for (let u = 0; u < layout.units.length; u++) await opt.gather(u);
        const got = await downloadTensors(gpu, PARAMS.map((p) => params.get(p.name)!));
        PARAMS.forEach((p, i) => (out[`zero3/before${step}/${p.name}`] = got[i] as Float32Array));
        for (let u = 0; u < layout.units.length; u++) opt.free(u);
      }
      const grads = upload(gpu, (p) => gradOf(p, rank, step));
      const reducer = new BucketReducer(gpu, comm, reduceLayout, grads, {
        mode: reductionMode(stage),
        writeBack: false,
        pieceBytes: 1024,
      });
      for (const p of order) reducer.markReady(p.name);
      const reduced = await reducer.finish();
      for (const t of grads.values()) t.release();
      const r = await opt.step(reduced, { lr: LR[step], step });
      norms.push(r.gradNorm, r.scale);
    }
    // checkpoint round trip: full moments (and ZeRO-3 params) out, into a fresh optimizer, out
    const moments = await opt.exportMoments();
    const exported = stage === 3 ? await opt.exportParams() : undefined;
    const fresh = await ZeroOptimizer.create(gpu, comm, {
      layout,
      params: upload(gpu, (p) => exported?.get(PARAMS[p].name) ?? initOf(p)),
      options: { stage, ...HYPER, pieceBytes: 1024 },
    });
    fresh.importMoments((name) => moments.get(name)!);
    if (exported) await fresh.importParams((name) => exported.get(name)!);
    const again = await fresh.exportMoments();
    const againParams = stage === 3 ? await fresh.exportParams() : undefined;
    for (const p of PARAMS) {
      out[`zero${stage}/m/${p.name}`] = moments.get(p.name)!.m;
      out[`zero${stage}/v/${p.name}`] = moments.get(p.name)!.v;
      out[`zero${stage}/m2/${p.name}`] = again.get(p.name)!.m;
      out[`zero${stage}/v2/${p.name}`] = again.get(p.name)!.v;
      if (exported) out[`zero3/export/${p.name}`] = exported.get(p.name)!;
      if (againParams) out[`zero3/export2/${p.name}`] = againParams.get(p.name)!;
    }
    if (stage !== 3) { for (const t of fresh.params.values()) t.release(); }
    fresh.destroy();
    if (stage === 3) {
      for (let u = 0; u < layout.units.length; u++) await opt.gather(u);
      if (params.size !== PARAMS.length) throw new Error("gather did not restore every param");
    }
    const got = await downloadTensors(gpu, PARAMS.map((p) => params.get(p.name)!));
    PARAMS.forEach((p, i) => (out[`zero${stage}/final/${p.name}`] = got[i] as Float32Array));
    out[`zero${stage}/norms`] = Float32Array.from(norms);
    if (stage === 3) {
      for (let u = 0; u < layout.units.length; u++) opt.free(u);
      if (params.size !== 0) throw new Error(`free left ${params.size} full tensors`);
    } else for (const t of params.values()) t.release();
    opt.destroy();
  }
  return out;
}
