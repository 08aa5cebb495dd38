/**
 * Learning-rate schedule: linear warmup from 0 to `lr` over `warmupSteps`, then a cosine
 * decay to `minLr` at `totalSteps`, constant `minLr` after.
 * @module
 */
import type { TrainConfig } from "./types.ts";

/** The learning rate of optimizer step `step` (1-based: the first step is 1). */
export function learningRate(
  step: number,
  c: Pick<TrainConfig, "lr" | "minLr" | "warmupSteps" | "totalSteps">,
): number {
  if (!Number.isInteger(step) || step < 1) {
    throw new Error(`Invalid step ${step} for the learning rate: must be an integer ≥ 1`);
  }
  if (step <= c.warmupSteps) return (c.lr * step) / c.warmupSteps;
  const span = Math.max(1, c.totalSteps - c.warmupSteps);
  const progress = Math.min(1, (step - c.warmupSteps) / span);
  return c.minLr + 0.5 * (c.lr - c.minLr) * (1 + Math.cos(Math.PI * progress));
}
