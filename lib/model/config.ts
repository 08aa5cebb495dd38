/**
 * Model configuration: one typed config with commented defaults, presets that override only
 * what changes, and validation that rejects unknown keys and inconsistent values with a
 * one-line message.
 *
 * Two models share one block (docs/LASP.md §5):
 * - `"tnl"`, TransNormerLLM: q, k through SiLU, per-head decay on TNL's head/layer schedule,
 *   attention output SRMSNorm-ed and gated, simple GLU (no activation) channel mixer.
 * - `"linear"`, Linear Transformer: the same block with decay 1 and the positive elu + 1
 *   feature map.
 * @module
 */
import type { FeatureMap } from "../ops/activation/activation.ts";
import type { GateActivation } from "../ops/srmsnorm/reference.ts";

/** Model family. */
export type ModelKind = "tnl" | "linear";
/** Tokenizer whose ids the model reads: GPT-2 BPE (50257 ids) or raw bytes (256). */
export type TokenizerName = "gpt2" | "bytes";
/** Decay schedule: TNL's per-head, per-layer rates, or none (λ = 1). */
export type DecaySchedule = "tnl" | "none";

/** Every field of a model; defaults in {@linkcode DEFAULT_CONFIG} (the `125m` shape). */
export interface ModelConfig {
  /** Model family: "tnl" or "linear". Default "tnl". */
  model: ModelKind;
  /** "gpt2" (BPE via js-tiktoken, 50257 ids) or "bytes" (256 ids). Default "gpt2". */
  tokenizer: TokenizerName;
  /** Embedding rows; at least the tokenizer's id count (extra rows pad, e.g. 50304). Default 50257. */
  vocabSize: number;
  /** Model width (residual stream). Default 768. */
  dim: number;
  /** Number of blocks L. Default 12. */
  layers: number;
  /** Attention heads H. Default 12. */
  heads: number;
  /** Width per head; heads · headDim must equal dim. Default dim / heads (64). */
  headDim: number;
  /** Hidden width of the simple GLU, y = W3·(W1 x ⊙ W2 x). Default 2048. */
  gluDim: number;
  /** The LM head shares the embedding matrix. Default true. */
  tieEmbeddings: boolean;
  /** φ on q and k: "silu" (TNL) or "elu1" (Linear Transformer). Default: follows `model`. */
  featureMap: FeatureMap;
  /** "tnl" (per-head rates fading with depth, see decay.ts) or "none" (λ = 1). Default: follows `model`. */
  decay: DecaySchedule;
  /** Activation of the output gate u in SRMSNorm(o) ⊙ act(u); TNL's code uses none. Default "none". */
  gateActivation: GateActivation;
  /** Learnable per-channel gain in the block and final norms (TNL's SRMSNorm has none). Default false. */
  normGain: boolean;
  /** Epsilon inside the SRMSNorm square root. Default 1e-6. */
  normEps: number;
  /** Training context length N (tokens per sequence). Default 2048. */
  seqLen: number;
  /** Standard deviation of the normal initialization of weight matrices. Default 0.02. */
  initStd: number;
  /** Dropout probability: only 0 (no dropout kernels; TNL and LASP pretrain without). Default 0. */
  dropout: number;
}

/** The defaults (documented field by field on {@linkcode ModelConfig}). */
export const DEFAULT_CONFIG: Readonly<ModelConfig> = Object.freeze({
  model: "tnl",
  tokenizer: "gpt2",
  vocabSize: 50257,
  dim: 768,
  layers: 12,
  heads: 12,
  headDim: 64,
  gluDim: 2048,
  tieEmbeddings: true,
  featureMap: "silu",
  decay: "tnl",
  gateActivation: "none",
  normGain: false,
  normEps: 1e-6,
  seqLen: 2048,
  initStd: 0.02,
  dropout: 0,
});

/** Settings that follow `model` unless given explicitly. */
const MODEL_DEFAULTS: Record<ModelKind, Pick<ModelConfig, "featureMap" | "decay">> = {
  tnl: { featureMap: "silu", decay: "tnl" },
  linear: { featureMap: "elu1", decay: "none" },
};

/** Ids each tokenizer produces. */
export const TOKENIZER_VOCAB: Record<TokenizerName, number> = { gpt2: 50257, bytes: 256 };

/**
 * Presets. Sizes of `400m` and `1b` follow the TransNormerLLM paper's 385M and 1B models as
 * recalled here (assumptions: 385M = 24 layers × 1024 wide, 8 heads; 1B = 16 layers × 2048
 * wide, 16 heads; GLU width 2.75 × dim, i.e. 2816 and 5632 as in TNL's released configs).
 * With GPT-2's vocabulary and tied embeddings they count 384.9M and 992.2M parameters
 * (TNL itself used a 64K vocabulary). `125m` is the GPT-3 Small shape with a GLU of ≈ 8/3·dim.
 * `tiny` trains on a CPU (lavapipe) in minutes: bytes, 2 layers, 128 wide.
 */
export const PRESETS: Record<string, Partial<ModelConfig>> = {
  tiny: {
    tokenizer: "bytes",
    vocabSize: 256,
    dim: 128,
    layers: 2,
    heads: 4,
    headDim: 32,
    gluDim: 256,
    seqLen: 128,
  },
  "125m": {},
  "400m": { dim: 1024, layers: 24, heads: 8, headDim: 128, gluDim: 2816 },
  "1b": { dim: 2048, layers: 16, heads: 16, headDim: 128, gluDim: 5632 },
};

const CHOICES: Partial<Record<keyof ModelConfig, readonly string[]>> = {
  model: ["tnl", "linear"],
  tokenizer: ["gpt2", "bytes"],
  featureMap: ["silu", "elu1"],
  decay: ["tnl", "none"],
  gateActivation: ["none", "sigmoid", "silu"],
};
const POSITIVE_INTEGERS = ["vocabSize", "dim", "layers", "heads", "headDim", "gluDim", "seqLen"];
const BOOLEANS = ["tieEmbeddings", "normGain"];

function checkValue(key: string, value: unknown, source: string): void {
  const bad = (rule: string): never => {
    throw new Error(`Invalid ${source} ${key} = ${JSON.stringify(value)}: ${rule}`);
  };
  const choices = CHOICES[key as keyof ModelConfig];
  if (choices) {
    if (typeof value !== "string" || !choices.includes(value)) {
      bad(`must be one of ${choices.map((c) => `"${c}"`).join(", ")}`);
    }
  } else if (POSITIVE_INTEGERS.includes(key)) {
    if (!Number.isSafeInteger(value) || (value as number) < 1) bad("must be a positive integer");
  } else if (BOOLEANS.includes(key)) {
    if (typeof value !== "boolean") bad("must be true or false");
  } else if (key === "normEps") {
    if (typeof value !== "number" || !(value > 0 && value < 1)) bad("must be in (0, 1)");
  } else if (key === "initStd") {
    if (typeof value !== "number" || !(value > 0 && value <= 1)) bad("must be in (0, 1]");
  } else if (key === "dropout") {
    if (value !== 0) bad("only 0 is supported (there are no dropout kernels)");
  }
}

/** Throws on the first inconsistency between fields. */
function checkConsistency(c: ModelConfig, source: string): void {
  const rules: [boolean, string][] = [
    [
      c.heads * c.headDim === c.dim,
      `heads × headDim = ${c.heads} × ${c.headDim} = ${
        c.heads * c.headDim
      } must equal dim ${c.dim}`,
    ],
    [
      c.vocabSize >= TOKENIZER_VOCAB[c.tokenizer],
      `vocabSize ${c.vocabSize} is smaller than the ${
        TOKENIZER_VOCAB[c.tokenizer]
      } ids of tokenizer "${c.tokenizer}"`,
    ],
    [
      !(c.model === "linear" && c.decay !== "none"),
      `model "linear" has no decay: decay must be "none", got "${c.decay}"`,
    ],
  ];
  for (const [ok, rule] of rules) if (!ok) throw new Error(`Inconsistent ${source}: ${rule}`);
}

/** Options of {@linkcode resolveModelConfig}. */
export interface ResolveOptions {
  /** Preset to start from (a key of {@linkcode PRESETS}); default: the defaults alone. */
  preset?: string;
  /** Names the origin in messages, e.g. "--config my.json". Default "model config". */
  source?: string;
}

/**
 * A complete, validated config: defaults, then the preset, then `overrides` (a plain object,
 * e.g. parsed JSON). Unknown keys, wrong types and inconsistent values are rejected.
 * `headDim` follows `dim / heads` when `dim` or `heads` is overridden and `headDim` is not;
 * `featureMap` and `decay` follow `model` unless given.
 */
export function resolveModelConfig(
  overrides: unknown = {},
  options: ResolveOptions = {},
): ModelConfig {
  const source = options.source ?? "model config";
  if (typeof overrides !== "object" || overrides === null || Array.isArray(overrides)) {
    throw new Error(
      `Invalid ${source}: expected an object of settings, got ${JSON.stringify(overrides)}`,
    );
  }
  const given = overrides as Record<string, unknown>;
  const known = Object.keys(DEFAULT_CONFIG);
  for (const key of Object.keys(given)) {
    if (!known.includes(key)) {
      throw new Error(`Unknown key "${key}" in ${source}: known keys are ${known.join(", ")}`);
    }
    checkValue(key, given[key], source);
  }
  let preset: Partial<ModelConfig> = {};
  if (options.preset !== undefined) {
    if (!Object.hasOwn(PRESETS, options.preset)) {
      throw new Error(
        `Unknown preset "${options.preset}": choose one of ${Object.keys(PRESETS).join(", ")}`,
      );
    }
    preset = PRESETS[options.preset];
  }
  const merged = { ...DEFAULT_CONFIG, ...preset, ...given } as ModelConfig;
  if (!("headDim" in given) && ("dim" in given || "heads" in given)) {
    merged.headDim = merged.dim / merged.heads;
    if (!Number.isInteger(merged.headDim)) {
      throw new Error(
        `Inconsistent ${source}: dim ${merged.dim} is not divisible by heads ${merged.heads}`,
      );
    }
  }
  const byModel = MODEL_DEFAULTS[merged.model];
  if (!("featureMap" in given)) merged.featureMap = byModel.featureMap;
  if (!("decay" in given)) merged.decay = byModel.decay;
  checkConsistency(merged, source);
  return merged;
}

/** Validates a complete config (e.g. read back from a checkpoint) and returns a copy. */
export function validateModelConfig(config: unknown, source = "model config"): ModelConfig {
  if (typeof config !== "object" || config === null) {
    throw new Error(`Invalid ${source}: expected an object, got ${JSON.stringify(config)}`);
  }
  const missing = Object.keys(DEFAULT_CONFIG).filter((k) => !(k in config));
  if (missing.length > 0) throw new Error(`Incomplete ${source}: missing ${missing.join(", ")}`);
  return resolveModelConfig(config, { source }); // every key given: nothing is derived
}
