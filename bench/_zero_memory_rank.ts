/**
 * Rank function of bench/zero_memory.ts: trains a few steps at each ZeRO stage and reports the
 * GPU pool's bytes in use after the step and at peak during it, with the losses.
 */
import type { Communicator } from "../lib/dist/communicator.ts";
import { openDevice } from "../lib/gpu/device.ts";
import { resolveModelConfig } from "../lib/model/config.ts";
import { Trainer } from "../lib/train/trainer.ts";
import { resolveTrainConfig } from "../lib/train/validate.ts";
import { Rng } from "../lib/util/rng.ts";

/** What every rank is told. */
export interface ZeroMemoryArgs {
  model: Record<string, unknown>;
  batch: number;
  steps: number;
  stages: (0 | 1 | 2 | 3)[];
}

/** Per stage: losses, bytes in use after the last step, peak during it. */
export type ZeroMemoryResult = Record<string, { losses: number[]; inUse: number; peak: number }>;

/** Trains `steps` steps at each stage on random tokens (the same on every stage). */
export async function zeroMemory(
  comm: Communicator,
  args: ZeroMemoryArgs,
): Promise<ZeroMemoryResult> {
  const gpu = await openDevice();
  const model = resolveModelConfig(args.model);
  const local = model.seqLen / comm.sp, per = args.batch / comm.dp;
  const out: ZeroMemoryResult = {};
  for (const zero of args.stages) {
    const train = resolveTrainConfig({ zero, totalSteps: args.steps, warmupSteps: 0, lr: 1e-3 });
    const trainer = await Trainer.create(gpu, { model, train, comm });
    const rng = new Rng(1 + comm.rank);
    const losses: number[] = [];
    let mem = trainer.memory();
    for (let s = 0; s < args.steps; s++) {
      const ids = Uint32Array.from({ length: per * local + 1 }, () => rng.int(model.vocabSize));
      const micro = { inputs: ids.slice(0, -1), targets: ids.slice(1), batch: per };
      losses.push((await trainer.step([micro])).loss);
      mem = trainer.memory();
    }
    out[zero] = { losses, inUse: mem.inUseBytes, peak: mem.peakBytes };
    trainer.destroy();
  }
  gpu.destroy();
  return out;
}
