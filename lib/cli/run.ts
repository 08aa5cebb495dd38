/**
 * `cli/train.ts` behind its argument parsing: resolves the options (over a checkpoint's when
 * resuming), then runs the ranks: W = sp × dp Workers of this process by default, or — when
 * a launcher started this process (RANK/WORLD_SIZE… set, see lib/launch/env.ts) — this
 * process as one rank over WebSockets with the rendezvous at MASTER_ADDR:MASTER_PORT.
 * @module
 */
import { Communicator } from "../dist/communicator.ts";
import { spawnWorkerRanks } from "../dist/worker_ranks.ts";
import { connectFromEnv } from "../launch/connect.ts";
import { launchEnvFrom } from "../launch/env.ts";
import { readCheckpointMeta, resolveCheckpointPath } from "./checkpoint.ts";
import type { RankArgs, RankResult } from "./loop.ts";
import { parseTrainArgs, resolveTrainOptions, type TrainOptions, trainUsage } from "./options.ts";
import { trainRank } from "./rank.ts";

/** Receive timeout between ranks: generous, since the first step compiles every kernel. */
const RANK_TIMEOUT_MS = 600_000;

/** Options of {@linkcode runTraining}. */
export interface RunTrainingOptions {
  /** Draw a progress bar (default: stdout is a terminal). */
  tty?: boolean;
  /** Print progress and messages. Default true. */
  verbose?: boolean;
  /** Environment to read the launch settings from (default: this process's). */
  env?: Record<string, string | undefined>;
}

/** The keys of the model whose values differ between two configs. */
function differences(a: object, b: object): string[] {
  const x = a as Record<string, unknown>, y = b as Record<string, unknown>;
  return Object.keys(x).filter((k) => JSON.stringify(x[k]) !== JSON.stringify(y[k]));
}

/** Parses `args`, resolves the run and its checkpoint to resume; undefined after `--help`. */
export async function prepareRun(args: readonly string[]): Promise<RankArgs | undefined> {
  const { given, help } = await parseTrainArgs(args);
  if (help) return undefined;
  let base: Partial<TrainOptions> = {};
  let resume: string | undefined;
  let saved;
  if (given.resume !== undefined) {
    resume = await resolveCheckpointPath(given.resume);
    saved = await readCheckpointMeta(resume);
    base = { ...saved.options, resume: undefined, stopAt: undefined };
  }
  const { options, model, train } = resolveTrainOptions(given, base);
  if (saved) {
    const changed = differences(model, saved.model);
    if (changed.length > 0) {
      throw new Error(
        `Cannot resume ${resume}: the options change its model's ${changed.join(", ")} (` +
          changed.map((k) =>
            `${JSON.stringify((saved.model as unknown as Record<string, unknown>)[k])} → ${
              JSON.stringify((model as unknown as Record<string, unknown>)[k])
            }`
          ).join(", ") + ")",
      );
    }
    if (saved.step >= options.steps) {
      throw new Error(
        `Cannot resume ${resume}: it is at step ${saved.step}, the run ends at --steps ${options.steps}`,
      );
    }
  }
  return { options, model, train, resume, tty: false };
}

/** Runs the training described by `args`; resolves with rank 0's result (undefined after --help). */
export async function runTraining(
  args: readonly string[],
  run: RunTrainingOptions = {},
): Promise<RankResult | undefined> {
  const prepared = await prepareRun(args);
  if (!prepared) {
    console.log(trainUsage());
    return undefined;
  }
  const interrupt = new SharedArrayBuffer(4);
  const rankArgs: RankArgs = {
    ...prepared,
    tty: run.tty ?? Deno.stdout.isTerminal(),
    verbose: run.verbose ?? true,
    interrupt,
  };
  // First Ctrl-C (or SIGTERM, e.g. a scheduler's preemption notice): finish the step, write
  // a checkpoint, stop. Second: exit at once.
  const onInterrupt = () => {
    if (Atomics.exchange(new Int32Array(interrupt), 0, 1) === 1) Deno.exit(130);
    console.error("\nstopping after this step with a checkpoint (Ctrl-C again to quit now)");
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, onInterrupt);
  try {
    return await runRanks(rankArgs, run);
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, onInterrupt);
  }
}

async function runRanks(rankArgs: RankArgs, run: RunTrainingOptions): Promise<RankResult> {
  const { sp, dp } = rankArgs.options;
  const world = sp * dp;
  const env = run.env ?? Deno.env.toObject();
  const launch = launchEnvFrom(env);
  if (launch.worldSize > 1) {
    if (launch.worldSize !== world) {
      throw new Error(
        `The launcher started ${launch.worldSize} ranks (WORLD_SIZE) but --sp ${sp} × --dp ${dp} needs ${world}`,
      );
    }
    const { comm } = await connectFromEnv({ sp, env, timeoutMs: RANK_TIMEOUT_MS });
    try {
      return await trainRank(comm, { ...rankArgs, tty: rankArgs.tty && launch.rank === 0 });
    } finally {
      await comm.close();
    }
  }
  if (world === 1) {
    const comm = Communicator.solo({ sp: 1, timeoutMs: RANK_TIMEOUT_MS });
    return await trainRank(comm, rankArgs);
  }
  const results = await spawnWorkerRanks<RankResult, RankArgs>({
    world,
    sp,
    module: new URL("./rank.ts", import.meta.url),
    exportName: "trainRank",
    args: rankArgs,
    timeoutMs: RANK_TIMEOUT_MS,
  });
  return results[0];
}
