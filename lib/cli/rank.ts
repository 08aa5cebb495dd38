/**
 * One training rank: opens its GPU device, builds the {@linkcode Trainer} and runs the loop.
 * Exported as a rank function for `spawnWorkerRanks` (one Worker per rank) and called
 * directly by a process that is one rank of a launched run.
 * @module
 */
import type { Communicator } from "../dist/communicator.ts";
import { openDevice } from "../gpu/device.ts";
import { generate } from "../model/generate.ts";
import { Trainer } from "../train/trainer.ts";
import { type RankArgs, type RankResult, trainLoop } from "./loop.ts";

/** Rank function: trains this rank's part of the run described by `args`. */
export async function trainRank(comm: Communicator, args: RankArgs): Promise<RankResult> {
  const gpu = await openDevice({ gpu: args.options.gpu });
  try {
    const trainer = await Trainer.create(gpu, { model: args.model, train: args.train, comm });
    try {
      return await trainLoop(comm, trainer, {
        ...args,
        describeDevice: `${gpu.adapterName} (${gpu.implementation})`,
        sample: (params, o) => generate(gpu, { model: args.model, params, ...o }),
      });
    } finally {
      trainer.destroy();
    }
  } finally {
    gpu.destroy();
  }
}
