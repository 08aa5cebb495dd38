/**
 * Training core: schedule and config checks, the loss falls on a tiny run, gradient
 * accumulation equals one big batch, resuming from exported state is exact, and sequence
 * parallelism (SP = 2, 4, DP 2 × SP 2 with ZeRO-0; DP 2 ZeRO-2, DP 2 × SP 2 ZeRO-3; more ZeRO
 * cases in zero_train_test.ts;
 * ranks as Workers) reproduces the single-rank per-step losses for 20 steps.
 *
 * Tolerances (relative, fp32 throughout; seen on lavapipe in brackets): per-step losses RMS
 * 1e-5 [≤ 2.5e-6], eval loss 1e-5 [≤ 1e-6], first-step gradient norm 1e-5 [≤ 4e-8], all
 * gradient norms 1e-3 [≤ 8e-5: Adam amplifies rounding differences of tiny gradient entries].
 * The SP = 1 run is the same code (LaspAttention with T = 1 sends nothing).
 */
import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { Communicator } from "../lib/dist/communicator.ts";
import { spawnWorkerRanks } from "../lib/dist/worker_ranks.ts";
import { resolveModelConfig } from "../lib/model/config.ts";
import { Trainer } from "../lib/train/trainer.ts";
import { learningRate } from "../lib/train/schedule.ts";
import { resolveTrainConfig } from "../lib/train/validate.ts";
import type { NamedArrays } from "../lib/train/types.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import { globalBatch, TRAIN_TEST_MODEL, trainRank, type TrainRankArgs } from "./_train_rank.ts";
import { testGpu } from "./_gpu.ts";

const MODEL = TRAIN_TEST_MODEL;
const TRAIN = { lr: 1e-2, minLr: 1e-3, warmupSteps: 3, totalSteps: 20, seed: 7 };

Deno.test("learning rate: linear warmup, cosine to minLr, then flat", () => {
  const c = { lr: 1, minLr: 0.1, warmupSteps: 4, totalSteps: 14 };
  deepEqual([1, 2, 4].map((s) => learningRate(s, c)), [0.25, 0.5, 1]);
  assertClose([learningRate(9, c)], [0.55], { rms: 1e-12, label: "half way" });
  equal(learningRate(14, c), 0.1);
  equal(learningRate(100, c), 0.1);
  equal(learningRate(1, { ...c, warmupSteps: 0 }), 0.1 + 0.45 * (1 + Math.cos(Math.PI / 14)));
  throws(() => learningRate(0, c), /Invalid step 0/);
});

Deno.test("train config: defaults, unknown keys, ranges", () => {
  equal(resolveTrainConfig({}).lr, 3e-4);
  throws(() => resolveTrainConfig({ lrr: 1 }), /Unknown key "lrr" in train config/);
  throws(() => resolveTrainConfig({ gradAccum: 0 }), /gradAccum = 0: must be a positive integer/);
  throws(() => resolveTrainConfig({ zero: 4 }), /zero = 4: must be 0, 1, 2 or 3/);
  throws(() => resolveTrainConfig({ laspMode: "x" }), /laspMode = "x": must be "ring" or/);
});

Deno.test("the loss falls on a tiny run (single rank)", async () => {
  const args: TrainRankArgs = {
    model: MODEL,
    train: { ...TRAIN, totalSteps: 30 },
    batch: 4,
    steps: 30,
    seed: 1,
  };
  const { stats, messages, evalLoss } = await trainRank(Communicator.solo(), args);
  const losses = stats.map((s) => s.loss);
  equal(messages, 0);
  ok(Math.abs(losses[0] - Math.log(256)) < 0.3, `initial loss ${losses[0]} ≈ ln 256`);
  const last = losses.slice(-3).reduce((a, b) => a + b, 0) / 3;
  ok(last < 0.5 * losses[0], `loss fell from ${losses[0]} to ${last}`);
  ok(evalLoss < 0.5 * losses[0], `eval loss ${evalLoss}`);
  stats.forEach((s, i) => {
    equal(s.step, i + 1);
    equal(s.tokens, 4 * 64);
    ok(Number.isFinite(s.gradNorm) && s.gradNorm > 0);
  });
  console.log(`losses: ${losses.map((l) => l.toFixed(3)).join(" ")}`);
});

Deno.test("gradient accumulation over 2 micro-batches equals one batch of both", async () => {
  const gpu = await testGpu();
  const model = resolveModelConfig(MODEL);
  const args: TrainRankArgs = { model: MODEL, train: {}, batch: 2, steps: 0, seed: 3 };
  const results = [];
  for (const gradAccum of [1, 2]) {
    const train = resolveTrainConfig({ ...TRAIN, gradAccum });
    const trainer = await Trainer.create(gpu, { model, train, comm: Communicator.solo() });
    const losses = [];
    for (let s = 0; s < 3; s++) {
      const halves = [globalBatch(args, 64, 2 * s), globalBatch(args, 64, 2 * s + 1)];
      const micro = gradAccum === 2 ? halves.map((h) => ({ ...h, batch: 2 })) : [{
        inputs: Uint32Array.from([...halves[0].inputs, ...halves[1].inputs]),
        targets: Uint32Array.from([...halves[0].targets, ...halves[1].targets]),
        batch: 4,
      }];
      losses.push((await trainer.step(micro)).loss);
    }
    results.push({ losses, state: await trainer.exportState() });
    trainer.destroy();
  }
  assertClose(results[1].losses, results[0].losses, { rms: 1e-6, label: "losses" });
  for (const [name, a] of Object.entries(results[0].state.params)) {
    assertClose(results[1].state.params[name].data, a.data, { rms: 1e-5, label: name });
  }
});

const SP_ARGS: TrainRankArgs = { model: MODEL, train: TRAIN, batch: 4, steps: 20, seed: 11 };
let single: Promise<Awaited<ReturnType<typeof trainRank>>> | undefined;

for (
  const [world, sp, zero] of [[2, 2, 0], [4, 4, 0], [4, 2, 0], [2, 1, 2], [4, 2, 3]] as const
) {
  Deno.test(`W=${world} SP=${sp} ZeRO-${zero} (Workers) matches the single rank for 20 steps`, async () => {
    single ??= trainRank(Communicator.solo(), SP_ARGS);
    const ref = await single;
    const outputs = await spawnWorkerRanks<Awaited<ReturnType<typeof trainRank>>>({
      world,
      sp,
      module: new URL("./_train_rank.ts", import.meta.url),
      exportName: "trainRank",
      // SP = 4 also recomputes: the backward reruns each block's forward, LASP exchange included
      args: { ...SP_ARGS, train: { ...TRAIN, zero, recompute: sp === 4 } },
      timeoutMs: 300_000,
    });
    equal(ref.reduceWaitMs, 0, "one rank reduces nothing");
    for (const [r, o] of outputs.entries()) {
      deepEqual(o.stats, outputs[0].stats, `rank ${r} reports the same stats as rank 0`);
      ok(
        o.reduceWaitMs >= 0 && Number.isFinite(o.reduceWaitMs),
        `reduction wait ${o.reduceWaitMs}`,
      );
      // ring LASP: per layer and step one state forward (all but the last rank of the SP group)
      // and one back (all but the first), with or without recomputation (a rerun reuses it)
      const t = r % sp;
      const perLayer = sp === 1 ? 0 : Number(t < sp - 1) + Number(t > 0);
      equal(
        o.messages,
        SP_ARGS.steps * resolveModelConfig(MODEL).layers * perLayer,
        `rank ${r} messages`,
      );
    }
    const label = `W=${world} SP=${sp} ZeRO-${zero}${sp === 4 ? " recompute" : ""}`;
    assertClose(outputs[0].stats.map((s) => s.loss), ref.stats.map((s) => s.loss), {
      rms: 1e-5,
      label: `${label} losses`,
    });
    // the first step's gradients agree to fp32 rounding; later norms drift a little more
    // than losses (Adam amplifies the rounding differences of near-zero gradient entries)
    assertClose([outputs[0].stats[0].gradNorm], [ref.stats[0].gradNorm], {
      rms: 1e-5,
      label: `${label} first grad norm`,
    });
    assertClose(outputs[0].stats.map((s) => s.gradNorm), ref.stats.map((s) => s.gradNorm), {
      rms: 1e-3,
      label: `${label} grad norms`,
    });
    assertClose([outputs[0].evalLoss], [ref.evalLoss], { rms: 1e-5, label: `${label} eval` });
    deepEqual(outputs[0].stats.map((s) => s.tokens), ref.stats.map((s) => s.tokens));
  });
}

Deno.test("no GPU memory leaks across steps; recomputation lowers the peak", async () => {
  const gpu = await testGpu();
  const model = resolveModelConfig({ ...MODEL, layers: 4, seqLen: 256 });
  const args: TrainRankArgs = { model: MODEL, train: {}, batch: 2, steps: 0, seed: 5 };
  const peaks: number[] = [];
  for (const recompute of [false, true]) {
    const train = resolveTrainConfig({ ...TRAIN, recompute });
    const trainer = await Trainer.create(gpu, { model, train, comm: Communicator.solo() });
    const micro = [{ ...globalBatch(args, 256, 0), batch: 2 }];
    await trainer.step(micro);
    const after1 = trainer.memory().inUseBytes;
    await trainer.step(micro);
    const m = trainer.memory();
    equal(m.inUseBytes, after1, `recompute ${recompute}: bytes in use after steps 1 and 2`);
    peaks.push(m.peakBytes - m.inUseBytes); // activations and temporaries above the resident state
    trainer.destroy();
  }
  ok(peaks[1] < 0.75 * peaks[0], `activation peak with recompute ${peaks[1]} vs ${peaks[0]}`);
});

Deno.test("export, import and continue equals training straight through", async () => {
  const gpu = await testGpu();
  const model = resolveModelConfig(MODEL);
  const train = resolveTrainConfig(TRAIN);
  const args: TrainRankArgs = { model: MODEL, train: {}, batch: 2, steps: 0, seed: 8 };
  const micro = (i: number) => [{ ...globalBatch(args, 64, i), batch: 2 }];
  const straight = await Trainer.create(gpu, { model, train, comm: Communicator.solo() });
  const expected = [];
  for (let i = 0; i < 4; i++) expected.push((await straight.step(micro(i))).loss);
  straight.destroy();
  const first = await Trainer.create(gpu, { model, train, comm: Communicator.solo() });
  for (let i = 0; i < 2; i++) await first.step(micro(i));
  const state = await first.exportState();
  first.destroy();
  equal(state.step, 2);
  const resumed = await Trainer.create(gpu, {
    model,
    train: { ...train, seed: 99 },
    comm: Communicator.solo(),
  });
  await resumed.importState(state);
  const got = [];
  for (let i = 2; i < 4; i++) got.push(await resumed.step(micro(i)));
  deepEqual(got.map((s) => s.loss), expected.slice(2));
  deepEqual(got.map((s) => s.step), [3, 4]);
  const bad = { ...state, params: { ...state.params } };
  delete bad.params["embed_tokens.weight"];
  await rejects(resumed.importState(bad), /parameter "embed_tokens.weight" is missing/);
  resumed.destroy();
});

Deno.test("initialization is a function of the seed alone", async () => {
  const gpu = await testGpu();
  const model = resolveModelConfig(MODEL);
  const states: NamedArrays[] = [];
  for (const seed of [7, 7, 8]) {
    const train = resolveTrainConfig({ ...TRAIN, seed });
    const trainer = await Trainer.create(gpu, { model, train, comm: Communicator.solo() });
    states.push((await trainer.exportState()).params);
    trainer.destroy();
  }
  deepEqual(states[1], states[0]);
  const w = "layers.0.token_mixer.qkvu_proj.weight";
  ok(states[2][w].data.some((x, i) => x !== states[0][w].data[i]), "another seed, other values");
  const data = states[0][w].data;
  const std = Math.sqrt(data.reduce((a, x) => a + x * x, 0) / data.length);
  ok(Math.abs(std - 0.02) < 0.002, `initStd 0.02, got ${std}`);
  const out = states[0]["layers.0.token_mixer.out_proj.weight"].data;
  const stdOut = Math.sqrt(out.reduce((a, x) => a + x * x, 0) / out.length);
  ok(Math.abs(stdOut - 0.01) < 0.001, `residual projections 0.02 / sqrt(2·layers), got ${stdOut}`);
});
