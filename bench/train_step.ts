// Training step throughput and memory of the model on one GPU (T = 1: the same code path as
// sequence parallelism). First validates the GPU forward and backward against the float64
// model at tiny size (loss, and central differences of a few gradient entries), then times
// full optimizer steps (forward, backward, clip, AdamW, the step's one readback) per variant
// and prints tokens/s, peak GPU memory, and the top GPU kernels of one step.
// Usage:
//   deno run -A bench/train_step.ts [--gpu deno|dawn|auto] [--steps 5] [--profile 1 (top kernels; needs timestamp-query)]
//     [--variants "tiny:128:8,125m:2048:4,125m:8192:1,125m:8192:1:r,400m:2048:2,1b:2048:1"]
//   a variant is preset:seqLen:batch[:r] (r = activation recomputation)
import {
  Communicator,
  downloadTensors,
  GpuProfiler,
  initParams,
  LaspAttention,
  type LossResult,
  Model,
  modelLossReference,
  openDevice,
  type Trainer,
} from "../mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { tinyModelConfig, uploadParams } from "../lib/testing/tiny_model.ts";
import { flag } from "./_timing.ts";
import { createTrainSetup, parseVariant } from "./_train_setup.ts";

const args = Deno.args;
const gpu = await openDevice({ gpu: flag(args, "gpu", "auto") as "auto" });
const steps = Number(flag(args, "steps", "5"));
const profile = flag(args, "profile", "0") === "1";
const variants = flag(
  args,
  "variants",
  "tiny:128:8,125m:2048:4,125m:8192:1,125m:8192:1:r,400m:2048:2,1b:2048:1",
).split(",");
console.log(`device: ${gpu.adapterName} (${gpu.implementation})`);

// ---- validation against the float64 model ------------------------------------------------------
for (const kind of ["tnl", "linear"] as const) {
  const config = tinyModelConfig({ model: kind, seqLen: 40, initStd: 0.3 });
  const rng = new Rng(3);
  const tokens = {
    inputs: Uint32Array.from({ length: 80 }, () => rng.int(32)),
    targets: Uint32Array.from({ length: 80 }, () => rng.int(32)),
    batch: 2,
  };
  const host = initParams(config, 1);
  const model = new Model(gpu, {
    config,
    attention: new LaspAttention(Communicator.solo()),
    params: uploadParams(gpu, host),
    logitsChunkRows: 13,
  });
  await model.zeroGrads();
  const r = await model.forward(tokens, { needsGrad: true, lossScale: 1 / 80 }) as LossResult;
  await model.backward();
  const name = "layers.0.token_mixer.qkvu_proj.weight";
  const [grad, ...stats] = await downloadTensors(gpu, [model.grads.get(name)!, ...r.stats]);
  const ref = Object.fromEntries(
    Object.entries(host).map(([k, v]) => [k, Float64Array.from(v.data)]),
  );
  const loss = modelLossReference(config, ref, tokens);
  let worst = Math.abs(stats.reduce((a, s) => a + s[2], 0) / 80 - loss) / loss;
  for (let i = 0; i < 6; i++) {
    const j = rng.int(ref[name].length), keep = ref[name][j], h = 1e-4;
    ref[name][j] = keep + h;
    const up = modelLossReference(config, ref, tokens);
    ref[name][j] = keep - h;
    const fd = (up - modelLossReference(config, ref, tokens)) / (2 * h);
    ref[name][j] = keep;
    worst = Math.max(worst, Math.abs(grad[j] - fd) / Math.max(1e-3, Math.abs(fd)));
  }
  if (!(worst < 1e-3)) throw new Error(`${kind} model disagrees with float64: ${worst}`);
  console.log(
    `validation ${kind}: loss and gradients vs float64, worst relative error ${
      worst.toExponential(1)
    }`,
  );
  for (const s of r.stats) s.release();
  model.destroy();
}

// ---- timing -------------------------------------------------------------------------------------
const rows: string[] = [];
for (const v of variants) {
  const variant = parseVariant(v);
  let trainer: Trainer | undefined;
  try {
    const setup = await createTrainSetup(gpu, variant);
    trainer = setup.trainer;
    const { micro, model, tokens } = setup;
    await trainer.step(micro); // warm-up: pipelines, pool
    trainer.memory();
    const t0 = performance.now();
    let loss = 0;
    for (let s = 0; s < steps; s++) loss = (await trainer.step(micro)).loss;
    const ms = (performance.now() - t0) / steps;
    const mem = trainer.memory();
    let top = "";
    if (profile && gpu.features.has("timestamp-query")) {
      const prof = new GpuProfiler(gpu).start();
      await trainer.step(micro);
      const entries = (await prof.stop()).sort((a, b) => b.ms - a.ms);
      const total = entries.reduce((s, e) => s + e.ms, 0);
      top = ` | GPU ${total.toFixed(1)} ms: ` +
        entries.slice(0, 6).map((e) => `${e.label.slice(0, 28)} ${e.ms.toFixed(1)}`).join(", ");
      prof.destroy();
    }
    rows.push(
      `| ${v} | ${(model.layers)}×${model.dim} | ${ms.toFixed(1)} | ${
        Math.round(tokens / (ms / 1000))
      } | ${(mem.peakBytes / 2 ** 30).toFixed(2)} | ${loss.toFixed(3)}${top} |`,
    );
  } catch (e) {
    rows.push(`| ${v} | failed: ${(e as Error).message.slice(0, 120)} |`);
  } finally {
    trainer?.destroy();
    await gpu.commands.finish(); // recorded work may still use released buffers
    gpu.pool.clear();
  }
  console.log(rows.at(-1));
}
console.log("\n| variant | L×D | ms/step | tokens/s | peak GiB | loss | top kernels |");
console.log("|---|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
gpu.destroy();
