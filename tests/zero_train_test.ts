/**
 * Data-sequence hybrid training with ZeRO: DP = 2 × SP = 2 (W = 4) at ZeRO-1, 2 and 3, as
 * Workers and as processes over WebSockets started by the launcher (and DP = 2 with gradient
 * accumulation, and runs started with torchrun/Slurm variables), reproduces the per-step
 * losses of one rank training on the same global batch (ZeRO-0); every rank reports the same
 * stats. Tolerances, relative (seen on lavapipe in brackets): losses 1e-6 [5.5e-8], first
 * gradient norm 1e-6 [3.4e-8], all gradient norms 1e-5 [3.1e-7], eval loss 1e-6 [0].
 */
import { deepEqual } from "node:assert/strict";
import { Communicator } from "../lib/dist/communicator.ts";
import { freePort, spawnWorkerRanks } from "../lib/dist/worker_ranks.ts";
import { launch } from "../lib/launch/launcher.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import { TRAIN_TEST_MODEL, trainRank } from "./_train_rank.ts";
import type { ZeroTrainArgs, ZeroTrainResult } from "./_zero_train_rank.ts";
import { runWithLauncherVars } from "./_launch_env.ts";

const ARGS: ZeroTrainArgs = {
  model: TRAIN_TEST_MODEL,
  train: { lr: 1e-2, minLr: 1e-3, warmupSteps: 2, totalSteps: 6, seed: 7 },
  batch: 4,
  steps: 6,
  seed: 11,
  stages: [1, 2, 3],
};
const W = 4, SP = 2;
let single: ReturnType<typeof trainRank> | undefined;

async function check(
  outputs: ZeroTrainResult[],
  how: string,
  stages = ARGS.stages,
  steps = ARGS.steps,
  reference?: ReturnType<typeof trainRank>,
): Promise<void> {
  single ??= trainRank(Communicator.solo(), { ...ARGS, train: { ...ARGS.train, zero: 0 } });
  const ref = { ...await (reference ?? single) };
  ref.stats = ref.stats.slice(0, steps);
  for (const stage of stages) {
    const label = `${how} ZeRO-${stage}`;
    const got = outputs.map((o) => o[stage]);
    for (const [r, o] of got.entries()) {
      deepEqual(o.stats, got[0].stats, `${label}: rank ${r} reports the same stats as rank 0`);
    }
    const stats = got[0].stats;
    assertClose(stats.map((s) => s.loss), ref.stats.map((s) => s.loss), {
      rms: 1e-6,
      label: `${label} losses`,
    });
    assertClose([stats[0].gradNorm], [ref.stats[0].gradNorm], {
      rms: 1e-6,
      label: `${label} first grad norm`,
    });
    assertClose(stats.map((s) => s.gradNorm), ref.stats.map((s) => s.gradNorm), {
      rms: 1e-5,
      label: `${label} grad norms`,
    });
    if (steps === ARGS.steps) {
      assertClose([got[0].evalLoss], [ref.evalLoss], { rms: 1e-6, label: `${label} eval` });
    }
    deepEqual(stats.map((s) => s.tokens), ref.stats.map((s) => s.tokens));
  }
}

Deno.test("DP2×SP2 at ZeRO-1/2/3 (Workers) matches the single-rank losses", async () => {
  const outputs = await spawnWorkerRanks<ZeroTrainResult>({
    world: W,
    sp: SP,
    module: new URL("./_zero_train_rank.ts", import.meta.url),
    exportName: "zeroTrainRanks",
    args: ARGS,
    timeoutMs: 300_000,
  });
  await check(outputs, "Workers");
});

Deno.test("DP2×SP2 at ZeRO-1/2/3 (launcher processes, WebSockets) matches the single-rank losses", async () => {
  const results: ZeroTrainResult[] = [];
  const errors: string[] = [];
  const code = await launch({
    nproc: W,
    command: [
      new URL("./_zero_train_rank.ts", import.meta.url).pathname,
      `--sp=${SP}`,
      `--args=${JSON.stringify(ARGS)}`,
    ],
    masterPort: freePort(),
    gpus: [],
    env: { LASP_TOKEN: crypto.randomUUID(), LASP_GPU: "deno" },
    onLine: (rank, line, stream) => {
      if (line.startsWith("RESULT ")) results[rank] = JSON.parse(line.slice(7));
      else if (stream === "stderr") errors.push(`[rank ${rank}] ${line}`);
    },
  });
  if (code !== 0 || results.filter(Boolean).length !== W) {
    throw new Error(`launch exited ${code}: ${errors.slice(-6).join(" / ")}`);
  }
  await check(results, "processes");
});

for (const [style, stage] of [["torchrun", 1], ["slurm", 2]] as const) {
  Deno.test(`a tiny DP=2 training started with ${style} variables (ZeRO-${stage}) matches one rank`, async () => {
    // the first 3 of the 6 steps (same schedule), two processes with one sequence each
    const args = { ...ARGS, steps: 3, stages: [stage] };
    const outputs = await runWithLauncherVars<ZeroTrainResult>(
      style,
      2,
      new URL("./_zero_train_rank.ts", import.meta.url).pathname,
      ["--sp=1", `--args=${JSON.stringify(args)}`],
    );
    await check(outputs, style, [stage], 3);
  });
}

Deno.test("DP=2 with 2 micro-batches per step at ZeRO-1/2/3 (Workers) matches one rank", async () => {
  // the reducer runs on the last micro-batch's backward only: earlier ones must still count
  const args = { ...ARGS, train: { ...ARGS.train, gradAccum: 2 }, steps: 3 };
  const reference = trainRank(Communicator.solo(), { ...args, train: { ...args.train, zero: 0 } });
  const outputs = await spawnWorkerRanks<ZeroTrainResult>({
    world: 2,
    sp: 1,
    module: new URL("./_zero_train_rank.ts", import.meta.url),
    exportName: "zeroTrainRanks",
    args,
    timeoutMs: 300_000,
  });
  await check(outputs, "gradAccum 2", args.stages, 3, reference);
});
