/**
 * Options of `cli/train.ts`: one table of flags (name, type, rule, help) drives the command
 * line parser (`node:util` parseArgs), the JSON config file (`--config file.json`, keys are
 * the camelCase option names) and the help text. Precedence: defaults < checkpoint being
 * resumed < config file < flags. Unknown keys and bad values are rejected with one line
 * naming the value and the rule.
 * @module
 */
import { parseArgs } from "node:util";
import { type ModelConfig, type ModelKind, PRESETS, resolveModelConfig } from "../model/config.ts";
import { DEFAULT_TRAIN_CONFIG, type TrainConfig } from "../train/types.ts";
import type { GpuChoice } from "../gpu/device.ts";

/** Everything a training run is started with. */
export interface TrainOptions {
  /** Model preset (a key of PRESETS). */
  preset: string;
  /** Model family; default: the preset's. */
  model?: ModelKind;
  /** Model config overrides (JSON config only), e.g. `{"layers": 4}`. */
  modelConfig?: Record<string, unknown>;
  /** Sequence-parallel ranks T per sequence. */
  sp: number;
  /** Data-parallel groups D. */
  dp: number;
  /** Optimizer steps of the run (the LR schedule spans them). */
  steps: number;
  /** Tokens per sequence; default: the preset's. */
  seqLen?: number;
  /** Sequences per micro-batch over all DP groups (each group reads batch / dp). */
  batch: number;
  /** Peak learning rate; default: the preset's (see {@linkcode PRESET_LR}). */
  lr?: number;
  /** Final learning rate of the cosine; default lr / 10. */
  minLr?: number;
  /** Linear warmup steps; default min(100, steps / 10). */
  warmup?: number;
  /** AdamW weight decay. */
  weightDecay: number;
  /** Gradient-norm clip (0 = off). */
  clip: number;
  /** Seed of initialization, data order and sampling. */
  seed: number;
  /** WebGPU implementation; default `$LASP_GPU`, else auto. */
  gpu?: GpuChoice;
  /** Output directory (metrics.jsonl, loss.svg, checkpoints). */
  out: string;
  /** Checkpoint to continue from. */
  resume?: string;
  /** Validation every this many steps (0: only at the end). */
  evalEvery: number;
  /** Validation batches per evaluation. */
  evalBatches: number;
  /** Training text or token shard; default the SOTU corpus. */
  data?: string;
  /** LASP state exchange. */
  lasp: "ring" | "allgather";
  /** Micro-batches per optimizer step. */
  gradAccum: number;
  /** Recompute activations in the backward. */
  recompute: boolean;
  /** ZeRO stage (passed to the trainer). */
  zero: 0 | 1 | 2 | 3;
  /** Checkpoint every this many steps (0: only at the end). */
  saveEvery: number;
  /** Stop after this step with a checkpoint, as if interrupted (the schedule still spans `steps`). */
  stopAt?: number;
  /** Tokens sampled from the trained model at the end (0: none). */
  sampleTokens: number;
  /** Prompt of the sample. */
  prompt: string;
  /** Sampling temperature (0: greedy). */
  temperature: number;
}

/**
 * Peak learning rate per preset when `--lr` is not given: the tiny model learns fastest at a
 * higher rate than the large presets' (3e-4, DEFAULT_TRAIN_CONFIG).
 */
export const PRESET_LR: Record<string, number> = { tiny: 1e-3 };

/** Defaults of the options that have one. */
export const DEFAULT_OPTIONS: Readonly<TrainOptions> = Object.freeze({
  preset: "tiny",
  sp: 2,
  dp: 1,
  steps: 100,
  batch: 8,
  weightDecay: DEFAULT_TRAIN_CONFIG.weightDecay,
  clip: DEFAULT_TRAIN_CONFIG.clip,
  seed: DEFAULT_TRAIN_CONFIG.seed,
  out: "out/train",
  evalEvery: 25,
  evalBatches: 4,
  lasp: "ring",
  gradAccum: 1,
  recompute: false,
  zero: 0,
  saveEvery: 0,
  sampleTokens: 200,
  prompt: "The ",
  temperature: 0.8,
});

type Rule =
  | { type: "int"; min: number; max?: number }
  | { type: "number"; min: number; exclusive?: boolean }
  | { type: "string" }
  | { type: "choice"; choices: () => readonly (string | number)[] }
  | { type: "bool" };

interface Spec {
  key: keyof TrainOptions;
  rule: Rule;
  help: string;
}

const SPECS: Spec[] = [
  {
    key: "preset",
    rule: { type: "choice", choices: () => Object.keys(PRESETS) },
    help: "model preset",
  },
  {
    key: "model",
    rule: { type: "choice", choices: () => ["tnl", "linear"] },
    help: "model family",
  },
  { key: "sp", rule: { type: "int", min: 1 }, help: "sequence-parallel ranks per sequence" },
  { key: "dp", rule: { type: "int", min: 1 }, help: "data-parallel groups (W = sp × dp ranks)" },
  { key: "steps", rule: { type: "int", min: 1 }, help: "optimizer steps of the schedule" },
  { key: "seqLen", rule: { type: "int", min: 1 }, help: "tokens per sequence (preset's)" },
  { key: "batch", rule: { type: "int", min: 1 }, help: "sequences per micro-batch, all DP groups" },
  { key: "lr", rule: { type: "number", min: 0, exclusive: true }, help: "peak learning rate" },
  { key: "minLr", rule: { type: "number", min: 0 }, help: "final learning rate (lr / 10)" },
  { key: "warmup", rule: { type: "int", min: 0 }, help: "warmup steps (min(100, steps/10))" },
  { key: "weightDecay", rule: { type: "number", min: 0 }, help: "AdamW weight decay" },
  { key: "clip", rule: { type: "number", min: 0 }, help: "gradient-norm clip, 0 = off" },
  { key: "seed", rule: { type: "int", min: 0, max: 2 ** 32 - 1 }, help: "seed of init and data" },
  { key: "gpu", rule: { type: "choice", choices: () => ["deno", "dawn", "auto"] }, help: "WebGPU" },
  { key: "out", rule: { type: "string" }, help: "output directory" },
  { key: "resume", rule: { type: "string" }, help: "checkpoint to continue from" },
  { key: "evalEvery", rule: { type: "int", min: 0 }, help: "validate every N steps, 0 = at end" },
  { key: "evalBatches", rule: { type: "int", min: 1 }, help: "validation batches per evaluation" },
  { key: "data", rule: { type: "string" }, help: "text file or token shard (SOTU corpus)" },
  {
    key: "lasp",
    rule: { type: "choice", choices: () => ["ring", "allgather"] },
    help: "LASP state exchange",
  },
  { key: "gradAccum", rule: { type: "int", min: 1 }, help: "micro-batches per step" },
  { key: "recompute", rule: { type: "bool" }, help: "recompute activations in the backward" },
  { key: "zero", rule: { type: "choice", choices: () => [0, 1, 2, 3] }, help: "ZeRO stage" },
  { key: "saveEvery", rule: { type: "int", min: 0 }, help: "checkpoint every N steps, 0 = at end" },
  { key: "stopAt", rule: { type: "int", min: 1 }, help: "stop after step N with a checkpoint" },
  { key: "sampleTokens", rule: { type: "int", min: 0 }, help: "tokens sampled at the end" },
  { key: "prompt", rule: { type: "string" }, help: "prompt of the sample" },
  {
    key: "temperature",
    rule: { type: "number", min: 0 },
    help: "sampling temperature, 0 = greedy",
  },
];

/** `seqLen` → `--seq-len`. */
export function flagName(key: string): string {
  return "--" + key.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
}

function describe(rule: Rule): string {
  switch (rule.type) {
    case "int":
      return rule.max === undefined
        ? `must be an integer ≥ ${rule.min}`
        : `must be an integer in [${rule.min}, ${rule.max}]`;
    case "number":
      return `must be a number ${rule.exclusive ? ">" : "≥"} ${rule.min}`;
    case "string":
      return "must be a non-empty string";
    case "choice":
      return `must be one of ${rule.choices().join(", ")}`;
    case "bool":
      return "must be true or false";
  }
}

/** Checks one value (already converted from text for flags); returns it or throws. */
function check(spec: Spec, value: unknown, label: string): unknown {
  const { rule } = spec;
  const fail = (): never => {
    throw new Error(`Invalid ${label} ${JSON.stringify(value)}: ${describe(rule)}`);
  };
  switch (rule.type) {
    case "int":
      if (!Number.isSafeInteger(value) || (value as number) < rule.min) fail();
      if (rule.max !== undefined && (value as number) > rule.max) fail();
      break;
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value)) fail();
      if (rule.exclusive ? !((value as number) > rule.min) : !((value as number) >= rule.min)) {
        fail();
      }
      break;
    case "string":
      if (typeof value !== "string" || value === "") fail();
      break;
    case "choice":
      if (!rule.choices().includes(value as string | number)) fail();
      break;
    case "bool":
      if (typeof value !== "boolean") fail();
      break;
  }
  return value;
}

/** Converts flag text to the rule's type (numbers strictly: "1e-3" yes, "3x" no). */
function fromText(spec: Spec, text: string): unknown {
  const { rule } = spec;
  const numeric = rule.type === "int" || rule.type === "number" ||
    (rule.type === "choice" && typeof rule.choices()[0] === "number");
  if (!numeric) return text;
  const trimmed = text.trim();
  const n = trimmed === "" ? NaN : Number(trimmed);
  return Number.isNaN(n) ? text : n;
}

/** Parsed command line: the options given explicitly (flags over config file). */
export interface ParsedArgs {
  /** Options given by the config file and flags (flags win). */
  given: Partial<TrainOptions>;
  /** `--help` was asked for. */
  help: boolean;
}

/** Validates a parsed JSON config (an object of option keys); `source` names it in errors. */
export function checkConfigObject(config: unknown, source: string): Partial<TrainOptions> {
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new Error(`Invalid ${source}: expected a JSON object of options`);
  }
  const out: Record<string, unknown> = {};
  const known = [...SPECS.map((s) => s.key), "modelConfig"];
  for (const [key, value] of Object.entries(config)) {
    if (key === "modelConfig") {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        throw new Error(`Invalid ${source} "modelConfig": must be an object of model settings`);
      }
      out.modelConfig = value;
      continue;
    }
    const spec = SPECS.find((s) => s.key === key);
    if (!spec) {
      throw new Error(`Unknown key "${key}" in ${source}: known keys are ${known.join(", ")}`);
    }
    out[key] = check(spec, value, `${source} "${key}"`);
  }
  return out as Partial<TrainOptions>;
}

async function readConfig(path: string): Promise<Partial<TrainOptions>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`Cannot read --config ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`Invalid --config ${path}: not JSON (${(e as Error).message})`);
  }
  return checkConfigObject(json, `--config ${path}`);
}

/** Parses `args` (flags, and the JSON file of `--config`) into explicitly given options. */
export async function parseTrainArgs(args: readonly string[]): Promise<ParsedArgs> {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    config: { type: "string" },
    help: { type: "boolean", short: "h" },
  };
  for (const s of SPECS) {
    options[flagName(s.key).slice(2)] = { type: s.rule.type === "bool" ? "boolean" : "string" };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...args], options, strict: true, allowPositionals: false });
  } catch (e) {
    const message = (e as Error).message;
    const unknown = message.match(/Unknown option '([^']+)'/);
    if (unknown) {
      throw new Error(`Unknown flag ${unknown[1]}: see --help for the known flags`);
    }
    const positional = message.match(/Unexpected argument '([^']+)'/);
    if (positional) {
      throw new Error(`Unexpected argument "${positional[1]}": every option is a --flag`);
    }
    const missing = message.match(/Option '(--[\w-]+)/);
    if (missing) throw new Error(`Missing value of ${missing[1]}: give it as ${missing[1]} VALUE`);
    throw new Error(message.split(". ")[0]);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const given: Record<string, unknown> = values.config !== undefined
    ? { ...await readConfig(values.config as string) }
    : {};
  for (const s of SPECS) {
    const flag = flagName(s.key);
    const raw = values[flag.slice(2)];
    if (raw === undefined) continue;
    given[s.key] = typeof raw === "boolean" ? raw : check(s, fromText(s, raw), flag);
  }
  return { given: given as Partial<TrainOptions>, help: values.help === true };
}

/** A run's options with the model and train configs they define. */
export interface ResolvedRun {
  /** Every option (defaults filled in). */
  options: TrainOptions;
  /** The model. */
  model: ModelConfig;
  /** The optimization settings. */
  train: TrainConfig;
}

/**
 * Fills in defaults under `base` (e.g. the options of a checkpoint being resumed) and
 * `given`, checks the rules between options, and derives the model and train configs.
 */
export function resolveTrainOptions(
  given: Partial<TrainOptions>,
  base: Partial<TrainOptions> = {},
): ResolvedRun {
  const o = { ...DEFAULT_OPTIONS, ...base, ...given } as TrainOptions;
  const model = resolveModelConfig(
    {
      ...o.modelConfig,
      ...(o.model !== undefined ? { model: o.model } : {}),
      ...(o.seqLen !== undefined ? { seqLen: o.seqLen } : {}),
    },
    { preset: o.preset, source: "model options" },
  );
  const lr = o.lr ?? PRESET_LR[o.preset] ?? DEFAULT_TRAIN_CONFIG.lr;
  const minLr = o.minLr ?? lr / 10;
  const warmup = o.warmup ?? Math.min(100, Math.floor(o.steps / 10));
  const rules: [boolean, string][] = [
    [o.batch % o.dp === 0, `Invalid --batch ${o.batch}: must be a multiple of --dp ${o.dp}`],
    [
      model.seqLen % o.sp === 0,
      `Invalid --seq-len ${model.seqLen}: must be a multiple of --sp ${o.sp}`,
    ],
    [minLr <= lr, `Invalid --min-lr ${minLr}: must not exceed --lr ${lr}`],
    [warmup <= o.steps, `Invalid --warmup ${warmup}: must not exceed --steps ${o.steps}`],
    [
      o.stopAt === undefined || o.stopAt <= o.steps,
      `Invalid --stop-at ${o.stopAt}: must not exceed --steps ${o.steps}`,
    ],
  ];
  for (const [ok, rule] of rules) if (!ok) throw new Error(rule);
  const train: TrainConfig = {
    ...DEFAULT_TRAIN_CONFIG,
    lr,
    minLr,
    warmupSteps: warmup,
    totalSteps: o.steps,
    weightDecay: o.weightDecay,
    clip: o.clip,
    gradAccum: o.gradAccum,
    recompute: o.recompute,
    seed: o.seed,
    laspMode: o.lasp,
    zero: o.zero,
  };
  return { options: o, model, train };
}

/** The `--help` text. */
export function trainUsage(): string {
  const lines = SPECS.map((s) => {
    const value = s.rule.type === "bool" ? "" : ` ${describeValue(s.rule)}`;
    const fallback = DEFAULT_OPTIONS[s.key];
    const def = fallback === undefined ? "" : ` (default ${JSON.stringify(fallback)})`;
    return `  ${(flagName(s.key) + value).padEnd(28)} ${s.help}${def}`;
  });
  return [
    "usage: deno run -A cli/train.ts [--config file.json] [flags]",
    "",
    "Trains a linear-attention LM with LASP over sp × dp ranks (Workers of this process, or",
    "one rank per process under cli/launch.ts / torchrun / Slurm / mpirun).",
    "",
    ...lines,
    `  ${"--config FILE".padEnd(28)} JSON object of the options above (camelCase keys,`,
    `  ${"".padEnd(28)} plus "modelConfig": model overrides); flags win`,
  ].join("\n");
}

function describeValue(rule: Rule): string {
  if (rule.type === "choice") return rule.choices().join("|");
  if (rule.type === "string") return "S";
  return rule.type === "int" ? "N" : "X";
}
