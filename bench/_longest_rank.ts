// One attempt of bench/longest_sequence.ts: builds the trainer for one sequence length, runs
// one optimizer step on random tokens, and prints a JSON line. Any WebGPU error (e.g. out of
// memory, a binding over the device's limit) makes the attempt fail.
import {
  Communicator,
  openDevice,
  resolveModelConfig,
  resolveTrainConfig,
  Trainer,
} from "../mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { flag } from "./_timing.ts";

const args = Deno.args;
const preset = flag(args, "preset", "125m");
const seqLen = Number(flag(args, "seq-len", "8192"));
const recompute = flag(args, "recompute", "1") === "1";
const gpu = await openDevice({ gpu: flag(args, "gpu", "auto") as "auto" });
const errors: string[] = [];
gpu.device.addEventListener("uncapturederror", (e) => {
  errors.push((e as GPUUncapturedErrorEvent).error.message.split("\n")[0]);
});
const model = resolveModelConfig({ seqLen }, { preset });
const train = resolveTrainConfig({ recompute, warmupSteps: 1, totalSteps: 10 });
const result: Record<string, unknown> = { preset, seqLen, recompute, gpu: gpu.implementation };
try {
  const trainer = await Trainer.create(gpu, { model, train, comm: Communicator.solo() });
  const rng = new Rng(1);
  const ids = () => Uint32Array.from({ length: seqLen }, () => rng.int(model.vocabSize));
  const t0 = performance.now();
  const stats = await trainer.step([{ inputs: ids(), targets: ids(), batch: 1 }]);
  await gpu.commands.finish();
  const ms = performance.now() - t0;
  const memory = trainer.memory();
  Object.assign(result, {
    ok: errors.length === 0 && Number.isFinite(stats.loss),
    loss: stats.loss,
    stepMs: Math.round(ms),
    tokensPerSec: Math.round(seqLen / (ms / 1000)),
    peakGiB: +(memory.peakBytes / 2 ** 30).toFixed(2),
  });
} catch (e) {
  Object.assign(result, { ok: false, error: (e as Error).message.split("\n")[0].slice(0, 160) });
}
if (errors.length) Object.assign(result, { ok: false, error: errors[0].slice(0, 160) });
console.log(JSON.stringify(result));
Deno.exit(0);
