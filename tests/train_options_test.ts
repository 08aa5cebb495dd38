import { deepStrictEqual, rejects, throws } from "node:assert/strict";
import {
  checkConfigObject,
  DEFAULT_OPTIONS,
  flagName,
  parseTrainArgs,
  resolveTrainOptions,
  trainUsage,
} from "../lib/cli/options.ts";
import { DEFAULT_TRAIN_CONFIG } from "../lib/train/types.ts";

Deno.test("train options: no flags give the tiny default run on 2 SP ranks", async () => {
  const { given, help } = await parseTrainArgs([]);
  deepStrictEqual([given, help], [{}, false]);
  const { options, model, train } = resolveTrainOptions(given);
  deepStrictEqual([options.preset, options.sp, options.dp], ["tiny", 2, 1]);
  deepStrictEqual([model.dim, model.layers, model.seqLen, model.tokenizer], [128, 2, 128, "bytes"]);
  deepStrictEqual(
    [train.lr, train.minLr, train.warmupSteps, train.totalSteps, train.laspMode, train.zero],
    [1e-3, 1e-4, 10, 100, "ring", 0],
  );
  deepStrictEqual(train.beta2, DEFAULT_TRAIN_CONFIG.beta2);
});

Deno.test("train options: every flag is parsed and reaches the configs", async () => {
  const { given } = await parseTrainArgs([
    "--preset=tiny",
    "--model",
    "linear",
    "--sp",
    "4",
    "--dp=2",
    "--steps",
    "30",
    "--seq-len",
    "64",
    "--batch",
    "4",
    "--lr",
    "2e-3",
    "--seed",
    "7",
    "--gpu",
    "deno",
    "--out",
    "/tmp/x",
    "--resume",
    "/tmp/c.safetensors",
    "--eval-every",
    "10",
    "--data",
    "corpus.txt",
    "--lasp",
    "allgather",
    "--grad-accum",
    "2",
    "--recompute",
    "--zero",
    "1",
  ]);
  deepStrictEqual(given, {
    preset: "tiny",
    model: "linear",
    sp: 4,
    dp: 2,
    steps: 30,
    seqLen: 64,
    batch: 4,
    lr: 2e-3,
    seed: 7,
    gpu: "deno",
    out: "/tmp/x",
    resume: "/tmp/c.safetensors",
    evalEvery: 10,
    data: "corpus.txt",
    lasp: "allgather",
    gradAccum: 2,
    recompute: true,
    zero: 1,
  });
  const { model, train } = resolveTrainOptions(given);
  deepStrictEqual([model.model, model.decay, model.featureMap, model.seqLen], [
    "linear",
    "none",
    "elu1",
    64,
  ]);
  deepStrictEqual(
    [train.lr, train.seed, train.laspMode, train.gradAccum, train.recompute, train.zero],
    [2e-3, 7, "allgather", 2, true, 1],
  );
  deepStrictEqual(train.warmupSteps, 3);
});

Deno.test("train options: bad flag values name the value and the rule", async () => {
  const cases: [string[], RegExp][] = [
    [["--sp", "0"], /^Error: Invalid --sp 0: must be an integer ≥ 1$/],
    [["--sp", "two"], /^Error: Invalid --sp "two": must be an integer ≥ 1$/],
    [["--steps", "1.5"], /^Error: Invalid --steps 1.5: must be an integer ≥ 1$/],
    [["--lr", "0"], /^Error: Invalid --lr 0: must be a number > 0$/],
    [["--lr", "fast"], /^Error: Invalid --lr "fast": must be a number > 0$/],
    [["--model", "gpt"], /^Error: Invalid --model "gpt": must be one of tnl, linear$/],
    [["--preset", "huge"], /^Error: Invalid --preset "huge": must be one of tiny, 125m, 400m, 1b$/],
    [["--gpu", "cuda"], /^Error: Invalid --gpu "cuda": must be one of deno, dawn, auto$/],
    [["--zero", "4"], /^Error: Invalid --zero 4: must be one of 0, 1, 2, 3$/],
    [["--lasp", "tree"], /^Error: Invalid --lasp "tree": must be one of ring, allgather$/],
    [["--frobnicate", "1"], /^Error: Unknown flag --frobnicate: see --help/],
    [["train"], /^Error: Unexpected argument "train"/],
    [["--sp"], /^Error: Missing value of --sp: give it as --sp VALUE$/],
  ];
  for (const [args, message] of cases) await rejects(parseTrainArgs(args), message);
});

Deno.test("train options: rules between options are checked", async () => {
  const resolve = async (args: string[]) => resolveTrainOptions((await parseTrainArgs(args)).given);
  await rejects(
    resolve(["--batch", "6", "--dp", "4"]),
    /^Error: Invalid --batch 6: must be a multiple of --dp 4$/,
  );
  await rejects(
    resolve(["--seq-len", "100", "--sp", "3"]),
    /Invalid --seq-len 100: must be a multiple of --sp 3/,
  );
  await rejects(resolve(["--steps", "5", "--stop-at", "6"]), /Invalid --stop-at 6/);
  await rejects(resolve(["--lr", "1e-4", "--min-lr", "1e-3"]), /must not exceed --lr/);
});

Deno.test("train options: config file merges under the flags; unknown keys rejected", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/run.json`;
    await Deno.writeTextFile(
      path,
      JSON.stringify({ sp: 4, steps: 50, lr: 5e-4, recompute: true, modelConfig: { layers: 3 } }),
    );
    const { given } = await parseTrainArgs(["--config", path, "--steps", "60"]);
    deepStrictEqual(given, {
      sp: 4,
      steps: 60,
      lr: 5e-4,
      recompute: true,
      modelConfig: { layers: 3 },
    });
    const { model, train, options } = resolveTrainOptions(given);
    deepStrictEqual([model.layers, train.lr, train.totalSteps, options.sp], [3, 5e-4, 60, 4]);
    // A checkpoint's options sit between the defaults and what is given.
    deepStrictEqual(resolveTrainOptions({ steps: 9 }, { steps: 8, seed: 3 }).options.seed, 3);

    await Deno.writeTextFile(path, JSON.stringify({ sp: 2, learningRate: 1 }));
    await rejects(
      parseTrainArgs(["--config", path]),
      new RegExp(`^Error: Unknown key "learningRate" in --config ${path}: known keys are preset,`),
    );
    await Deno.writeTextFile(path, JSON.stringify({ sp: "2" }));
    await rejects(
      parseTrainArgs(["--config", path]),
      new RegExp(`Invalid --config ${path} "sp" "2": must be an integer ≥ 1`),
    );
    await Deno.writeTextFile(path, JSON.stringify({ modelConfig: { depth: 3 } }));
    const bad = (await parseTrainArgs(["--config", path])).given;
    throws(() => resolveTrainOptions(bad), /Unknown key "depth" in model options/);
    await Deno.writeTextFile(path, "{ sp: 2 ");
    await rejects(parseTrainArgs(["--config", path]), /Invalid --config .*: not JSON/);
    await rejects(parseTrainArgs(["--config", `${dir}/none.json`]), /Cannot read --config/);
    throws(() => checkConfigObject([1], "x"), /Invalid x: expected a JSON object/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train options: help lists every flag with its default", () => {
  const usage = trainUsage();
  for (const key of Object.keys(DEFAULT_OPTIONS)) {
    deepStrictEqual(usage.includes(flagName(key)), true, key);
  }
  deepStrictEqual(usage.includes("--seq-len N"), true);
  deepStrictEqual(usage.includes('(default "tiny")'), true);
});
