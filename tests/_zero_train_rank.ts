/**
 * Rank side of the ZeRO training tests: the tiny run of tests/_train_rank.ts once per ZeRO
 * stage on one communicator. Run as a script (by the launcher, with RANK/WORLD_SIZE/MASTER_*
 * set), it connects through connectFromEnv and prints `RESULT <json>`; arguments:
 * `--sp N --args <json of ZeroTrainArgs>`.
 */
import { parseArgs } from "node:util";
import type { Communicator } from "../lib/dist/communicator.ts";
import { connectFromEnv } from "../lib/launch/connect.ts";
import type { StepStats } from "../lib/train/types.ts";
import { trainRank, type TrainRankArgs } from "./_train_rank.ts";

/** The tiny run, and the stages to train it with. */
export interface ZeroTrainArgs extends TrainRankArgs {
  stages: (0 | 1 | 2 | 3)[];
}

/** Per stage: the step stats and the eval loss. */
export type ZeroTrainResult = Record<string, { stats: StepStats[]; evalLoss: number }>;

/** Trains the tiny run at each stage in turn. */
export async function zeroTrainRanks(
  comm: Communicator,
  args: ZeroTrainArgs,
): Promise<ZeroTrainResult> {
  const out: ZeroTrainResult = {};
  for (const zero of args.stages) {
    const r = await trainRank(comm, { ...args, train: { ...args.train, zero } });
    out[zero] = { stats: r.stats, evalLoss: r.evalLoss };
  }
  return out;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { sp: { type: "string" }, args: { type: "string" } },
  });
  const { comm } = await connectFromEnv({ sp: Number(values.sp), timeoutMs: 300_000 });
  const result = await zeroTrainRanks(comm, JSON.parse(values.args!));
  await comm.close();
  console.log(`RESULT ${JSON.stringify(result)}`);
  Deno.exit(0);
}
