// One rank of bench/scaling.ts, started by lib/launch/launcher.ts (one process and GPU per
// rank): trains `--steps` optimizer steps of a preset on random tokens with LASP over its SP
// group and prints one JSON line: step time, tokens/s of this rank, LASP bytes and messages it
// sent per step, time waiting on peers, time waiting after the backward for the gradient
// reduction, peak GPU memory, and the time of one bare ring all-reduce of the gradient bytes.
// WebGPU errors fail the rank.
import { connectFromEnv } from "../lib/launch/connect.ts";
import { openDevice, resolveModelConfig, resolveTrainConfig, Trainer } from "../mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { parameterCount } from "../lib/model/params.ts";
import { ringAllReduce } from "../lib/dist/ring.ts";
import { flag } from "./_timing.ts";

const args = Deno.args;
const preset = flag(args, "preset", "125m");
const seqLen = Number(flag(args, "seq-len", "8192"));
const sp = Number(flag(args, "sp", "1"));
const steps = Number(flag(args, "steps", "3"));
const mode = flag(args, "lasp", "ring") as "ring" | "allgather";
const recompute = flag(args, "recompute", "1") === "1";
const { comm, launch } = await connectFromEnv({ sp, timeoutMs: 600_000 });
const gpu = await openDevice({ gpu: flag(args, "gpu", "auto") as "auto" });
const errors: string[] = [];
gpu.device.addEventListener("uncapturederror", (e) => {
  errors.push((e as GPUUncapturedErrorEvent).error.message.split("\n")[0]);
});
const model = resolveModelConfig({ seqLen }, { preset });
const train = resolveTrainConfig({ recompute, laspMode: mode, warmupSteps: 1, totalSteps: 100 });
const local = seqLen / sp;
const result: Record<string, unknown> = {
  rank: launch.rank,
  world: launch.worldSize,
  sp,
  seqLen,
  mode,
};
try {
  const trainer = await Trainer.create(gpu, { model, train, comm });
  const rng = new Rng(1 + launch.rank);
  const ids = () => Uint32Array.from({ length: local }, () => rng.int(model.vocabSize));
  const micro = [{ inputs: ids(), targets: ids(), batch: 1 }];
  await trainer.step(micro); // warm-up: pipelines, pool
  trainer.takeLaspCounters();
  trainer.takeReduceWaitMs();
  trainer.memory();
  const t0 = performance.now();
  let loss = NaN;
  for (let s = 0; s < steps; s++) loss = (await trainer.step(micro)).loss;
  const ms = (performance.now() - t0) / steps;
  const lasp = trainer.takeLaspCounters();
  const reduceWaitMs = trainer.takeReduceWaitMs();
  // what the step's gradient reduction costs alone: one ring all-reduce of every parameter's
  // gradient over the world, the algorithm of the trainer's buckets (which overlap it with
  // the backward); nothing to reduce with one rank
  let allReduceMs: number | undefined;
  if (comm.world > 1) {
    const grads = new Float32Array(parameterCount(model)).fill(1);
    await comm.barrier();
    const r0 = performance.now();
    await ringAllReduce(comm, grads);
    allReduceMs = performance.now() - r0;
  }
  Object.assign(result, {
    ok: errors.length === 0 && Number.isFinite(loss),
    stepMs: Math.round(ms),
    tokensPerSec: Math.round(local / (ms / 1000)),
    laspBytesPerStep: Math.round(lasp.bytesSent / steps),
    laspMessagesPerStep: Math.round(lasp.messagesSent / steps),
    laspWaitMsPerStep: Math.round(lasp.waitMs / steps),
    reduceWaitMsPerStep: Math.round(reduceWaitMs / steps),
    allReduceMs: allReduceMs === undefined ? undefined : Math.round(allReduceMs),
    peakGiB: +(trainer.memory().peakBytes / 2 ** 30).toFixed(2),
    loss,
  });
  trainer.destroy();
} catch (e) {
  Object.assign(result, { ok: false, error: (e as Error).message.split("\n")[0].slice(0, 160) });
}
if (errors.length) Object.assign(result, { ok: false, error: errors[0].slice(0, 160) });
console.log(`SCALING ${JSON.stringify(result)}`);
Deno.exit(0);
