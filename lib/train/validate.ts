/**
 * Checks of a {@linkcode TrainConfig}: unknown keys, types and ranges, one line per problem,
 * naming the value and the rule.
 * @module
 */
import { DEFAULT_TRAIN_CONFIG, type TrainConfig } from "./types.ts";

type Rule = (v: unknown) => string | undefined;

const nonNegative: Rule = (v) =>
  typeof v === "number" && Number.isFinite(v) && v >= 0 ? undefined : "must be a number ≥ 0";
const positiveInt: Rule = (v) =>
  Number.isSafeInteger(v) && (v as number) >= 1 ? undefined : "must be a positive integer";
const nonNegativeInt: Rule = (v) =>
  Number.isSafeInteger(v) && (v as number) >= 0 ? undefined : "must be an integer ≥ 0";
const unit: Rule = (v) =>
  typeof v === "number" && v >= 0 && v < 1 ? undefined : "must be in [0, 1)";

const RULES: Record<keyof TrainConfig, Rule> = {
  lr: nonNegative,
  minLr: nonNegative,
  warmupSteps: nonNegativeInt,
  totalSteps: positiveInt,
  weightDecay: nonNegative,
  beta1: unit,
  beta2: unit,
  eps: (v) => (typeof v === "number" && v > 0 ? undefined : "must be > 0"),
  clip: nonNegative,
  gradAccum: positiveInt,
  recompute: (v) => (typeof v === "boolean" ? undefined : "must be true or false"),
  seed: (v) => (Number.isSafeInteger(v) ? undefined : "must be an integer"),
  laspMode: (
    v,
  ) => (v === "ring" || v === "allgather" ? undefined : 'must be "ring" or "allgather"'),
  zero: (v) => ([0, 1, 2, 3].includes(v as number) ? undefined : "must be 0, 1, 2 or 3"),
};

/** A complete, checked config: defaults overridden by `overrides` (e.g. parsed JSON). */
export function resolveTrainConfig(
  overrides: unknown = {},
  source = "train config",
): TrainConfig {
  if (typeof overrides !== "object" || overrides === null || Array.isArray(overrides)) {
    throw new Error(`Invalid ${source}: expected an object, got ${JSON.stringify(overrides)}`);
  }
  const known = Object.keys(DEFAULT_TRAIN_CONFIG);
  for (const key of Object.keys(overrides)) {
    if (!known.includes(key)) {
      throw new Error(`Unknown key "${key}" in ${source}: known keys are ${known.join(", ")}`);
    }
  }
  const c = { ...DEFAULT_TRAIN_CONFIG, ...overrides } as TrainConfig;
  for (const key of known as (keyof TrainConfig)[]) {
    const problem = RULES[key](c[key]);
    if (problem) {
      throw new Error(`Invalid ${source} ${key} = ${JSON.stringify(c[key])}: ${problem}`);
    }
  }
  if (c.minLr > c.lr) {
    throw new Error(`Inconsistent ${source}: minLr ${c.minLr} exceeds lr ${c.lr}`);
  }
  return c;
}
