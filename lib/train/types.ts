/**
 * The contract between the training core (model forward/backward, optimizer, gradient
 * reduction: `lib/train/trainer.ts`) and its drivers (`cli/train.ts`, benchmarks, the scaling
 * script). One rank's view: a rank holds a slice of each sequence (sequence parallelism over
 * its SP group) and a shard of the batch (data parallelism over its DP group).
 * @module
 */
import type { ModelConfig } from "../model/config.ts";

/** Optimization settings; defaults in {@linkcode DEFAULT_TRAIN_CONFIG}. */
export interface TrainConfig {
  /** Peak learning rate. */
  lr: number;
  /** Final learning rate of the cosine decay. */
  minLr: number;
  /** Linear warmup steps from 0 to `lr`. */
  warmupSteps: number;
  /** Optimizer steps of the run (the cosine reaches `minLr` here). */
  totalSteps: number;
  /** AdamW decoupled weight decay (not applied to gains and biases). */
  weightDecay: number;
  /** AdamW β1. */
  beta1: number;
  /** AdamW β2. */
  beta2: number;
  /** AdamW ε. */
  eps: number;
  /** Global gradient-norm clip (0 = off). */
  clip: number;
  /** Micro-batches accumulated per optimizer step. */
  gradAccum: number;
  /** Recompute block activations in the backward instead of keeping them (long sequences). */
  recompute: boolean;
  /** Seed of parameter initialization (the data order has its own seed in the loader). */
  seed: number;
  /** LASP state exchange: "ring" (LASP-1) or "allgather" (LASP-2). */
  laspMode: "ring" | "allgather";
  /** ZeRO stage of the data-parallel optimizer: 0 (replicated), 1, 2 or 3. */
  zero: 0 | 1 | 2 | 3;
}

/** Defaults of {@linkcode TrainConfig}. */
export const DEFAULT_TRAIN_CONFIG: Readonly<TrainConfig> = Object.freeze({
  lr: 3e-4,
  minLr: 3e-5,
  warmupSteps: 100,
  totalSteps: 1000,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  clip: 1.0,
  gradAccum: 1,
  recompute: false,
  seed: 1234,
  laspMode: "ring",
  zero: 0,
});

/**
 * One micro-batch as this rank sees it: token ids of its slice of each of its sequences.
 * `inputs` and `targets` are [batch, localLength] row-major, localLength = seqLen / SP.
 */
export interface MicroBatch {
  /** Input ids [batch, localLength]. */
  inputs: Uint32Array;
  /** Next-token ids [batch, localLength]. */
  targets: Uint32Array;
  /** Sequences in the micro-batch (this rank's DP shard). */
  batch: number;
}

/** What one optimizer step reports (identical on every rank). */
export interface StepStats {
  /** Optimizer steps done, this one included. */
  step: number;
  /** Mean cross-entropy over every target token of the global batch (all ranks, all micro-batches). */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Learning rate used by this step. */
  lr: number;
  /** Target tokens in the global batch. */
  tokens: number;
}

/** Named host arrays of a rank's state, as written into a checkpoint. */
export interface NamedArrays {
  /** Row-major data and its shape. */
  [name: string]: { data: Float32Array; shape: number[] };
}

/** Everything needed to resume exactly, from one rank's point of view. */
export interface TrainerState {
  /** Parameters by their checkpoint names (e.g. `layers.0.token_mixer.qkvu_proj.weight`). */
  params: NamedArrays;
  /** Optimizer moments, named `<param>.exp_avg` / `<param>.exp_avg_sq`. */
  optimizer: NamedArrays;
  /** Optimizer steps done. */
  step: number;
}

/** The training core as drivers use it. */
export interface TrainerLike {
  /** Model configuration. */
  readonly model: ModelConfig;
  /** Optimization settings. */
  readonly train: TrainConfig;
  /** One optimizer step over `micro.length === train.gradAccum` micro-batches. */
  step(micro: MicroBatch[]): Promise<StepStats>;
  /** Mean loss over the given batches without updating anything (identical on every rank). */
  evaluate(batches: MicroBatch[]): Promise<number>;
  /** Parameters and optimizer state (full, unsharded, on every rank that calls it). */
  exportState(): Promise<TrainerState>;
  /** Restores what {@linkcode exportState} produced (shapes and names must match). */
  importState(state: TrainerState): Promise<void>;
  /** GPU bytes in use on this rank now and at peak since the last call. */
  memory(): { inUseBytes: number; peakBytes: number };
  /** Frees GPU memory. */
  destroy(): void;
}
