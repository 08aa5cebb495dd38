/**
 * Rank function of the training tests: a tiny model trained for a few steps on a fixed
 * synthetic stream, each rank on its DP shard of the batch and its SP slice of each sequence.
 * Returns the per-step stats (identical on every rank by contract).
 */
import type { Communicator } from "../lib/dist/communicator.ts";
import { openDevice } from "../lib/gpu/device.ts";
import { resolveModelConfig } from "../lib/model/config.ts";
import { sequenceRange, sliceSequence } from "../lib/lasp/split.ts";
import { Trainer } from "../lib/train/trainer.ts";
import { resolveTrainConfig } from "../lib/train/validate.ts";
import type { MicroBatch, StepStats } from "../lib/train/types.ts";
import { Rng } from "../lib/util/rng.ts";

/** Arguments of {@linkcode trainRank}. */
/** The model the training tests train for a few steps: byte vocabulary, 2 layers, 32 wide. */
export const TRAIN_TEST_MODEL = {
  tokenizer: "bytes",
  vocabSize: 256,
  dim: 32,
  heads: 2,
  layers: 2,
  gluDim: 64,
  seqLen: 64,
} as const;

export interface TrainRankArgs {
  model: Record<string, unknown>;
  train: Record<string, unknown>;
  /** Global batch (sequences per micro-batch, all DP ranks together). */
  batch: number;
  steps: number;
  seed: number;
}

/** Learnable windows: noisy repetitions of 4 byte patterns fixed by `patternSeed`. */
export function syntheticWindows(
  count: number,
  length: number,
  seeds: { patternSeed: number; seed: number },
): Uint32Array {
  const fixed = new Rng(seeds.patternSeed);
  const patterns = Array.from({ length: 4 }, () => Array.from({ length: 7 }, () => fixed.int(64)));
  const rng = new Rng(seeds.seed);
  const out = new Uint32Array(count * (length + 1));
  for (let w = 0; w < count; w++) {
    const p = patterns[rng.int(patterns.length)];
    const shift = rng.int(p.length);
    for (let t = 0; t <= length; t++) {
      out[w * (length + 1) + t] = rng.float() < 0.05 ? rng.int(64) : p[(t + shift) % p.length];
    }
  }
  return out;
}

/** Global micro-batch `i`: inputs and targets [batch, N]. */
export function globalBatch(args: TrainRankArgs, seqLen: number, i: number) {
  const windows = syntheticWindows(args.batch, seqLen, {
    patternSeed: args.seed,
    seed: args.seed + 1000 * (i + 1),
  });
  const inputs = new Uint32Array(args.batch * seqLen),
    targets = new Uint32Array(args.batch * seqLen);
  for (let b = 0; b < args.batch; b++) {
    const w = windows.subarray(b * (seqLen + 1), (b + 1) * (seqLen + 1));
    inputs.set(w.subarray(0, seqLen), b * seqLen);
    targets.set(w.subarray(1), b * seqLen);
  }
  return { inputs, targets };
}

/** This rank's slice of global micro-batch `i`. */
export function rankBatch(
  comm: Communicator,
  args: TrainRankArgs,
  seqLen: number,
  i: number,
): MicroBatch {
  const { inputs, targets } = globalBatch(args, seqLen, i);
  const per = args.batch / comm.dp;
  const rows = [comm.dpRank * per, (comm.dpRank + 1) * per];
  const range = sequenceRange(seqLen, comm.sp, comm.spRank);
  const cut = (a: Uint32Array) =>
    sliceSequence(a.slice(rows[0] * seqLen, rows[1] * seqLen), {
      outer: per,
      length: seqLen,
      inner: 1,
    }, range);
  return { inputs: cut(inputs), targets: cut(targets), batch: per };
}

/** Trains `args.steps` steps; returns the stats of each step and the LASP messages sent. */
export async function trainRank(
  comm: Communicator,
  args: TrainRankArgs,
): Promise<{ stats: StepStats[]; messages: number; evalLoss: number; reduceWaitMs: number }> {
  const gpu = await openDevice({ nanFill: true });
  const model = resolveModelConfig(args.model);
  const train = resolveTrainConfig(args.train);
  const trainer = await Trainer.create(gpu, { model, train, comm });
  const stats: StepStats[] = [];
  let messages = 0;
  for (let s = 0; s < args.steps; s++) {
    const micro = Array.from(
      { length: train.gradAccum },
      (_, a) => rankBatch(comm, args, model.seqLen, s * train.gradAccum + a),
    );
    stats.push(await trainer.step(micro));
    messages += trainer.takeLaspCounters().messagesSent;
  }
  const reduceWaitMs = trainer.takeReduceWaitMs();
  if (trainer.takeReduceWaitMs() !== 0) throw new Error("takeReduceWaitMs did not reset");
  const evalLoss = await trainer.evaluate([rankBatch(comm, args, model.seqLen, 10_000)]);
  trainer.destroy();
  gpu.destroy();
  return { stats, messages, evalLoss, reduceWaitMs };
}
