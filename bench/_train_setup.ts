/**
 * The training step the benchmarks time: a `preset:seqLen:batch[:r]` variant (r = activation
 * recomputation) turned into a trainer over a solo communicator (T = 1, the SP code path) and
 * one micro-batch of random tokens.
 * @module
 */
import {
  Communicator,
  type Gpu,
  type MicroBatch,
  type ModelConfig,
  resolveModelConfig,
  resolveTrainConfig,
  Trainer,
} from "../mod.ts";
import { Rng } from "../lib/util/rng.ts";

/** A parsed variant. */
export interface TrainVariant {
  /** The variant as written, e.g. `125m:2048:4`. */
  name: string;
  /** Model preset. */
  preset: string;
  /** Sequence length. */
  seqLen: number;
  /** Sequences per micro-batch. */
  batch: number;
  /** Activation recomputation. */
  recompute: boolean;
}

/** Parses `preset:seqLen:batch[:r]`. */
export function parseVariant(text: string): TrainVariant {
  const [preset, seq, batch, flags, ...rest] = text.split(":");
  const seqLen = Number(seq), b = Number(batch);
  if (
    !preset || !Number.isInteger(seqLen) || seqLen < 1 || !Number.isInteger(b) || b < 1 ||
    (flags !== undefined && flags !== "r") || rest.length > 0
  ) {
    throw new Error(
      `Invalid variant "${text}": write preset:seqLen:batch or preset:seqLen:batch:r (r = recompute)`,
    );
  }
  return { name: text, preset, seqLen, batch: b, recompute: flags === "r" };
}

/** A trainer for `variant` and the one micro-batch every step trains on. */
export interface TrainSetup {
  /** The trainer (destroy it when done). */
  trainer: Trainer;
  /** Resolved model config. */
  model: ModelConfig;
  /** `[micro-batch]` to pass to `trainer.step`. */
  micro: MicroBatch[];
  /** Tokens per step. */
  tokens: number;
}

/** Builds the trainer and a micro-batch of random tokens (seeded: the same on every call). */
export async function createTrainSetup(gpu: Gpu, variant: TrainVariant): Promise<TrainSetup> {
  const model = resolveModelConfig({ seqLen: variant.seqLen }, { preset: variant.preset });
  const train = resolveTrainConfig({
    recompute: variant.recompute,
    warmupSteps: 1,
    totalSteps: 100,
  });
  const trainer = await Trainer.create(gpu, { model, train, comm: Communicator.solo() });
  const rng = new Rng(1);
  const n = variant.batch * model.seqLen;
  const ids = () => Uint32Array.from({ length: n }, () => rng.int(model.vocabSize));
  return {
    trainer,
    model,
    micro: [{ inputs: ids(), targets: ids(), batch: variant.batch }],
    tokens: n,
  };
}
