/**
 * Training checkpoints as one safetensors file: the model's parameters under their standard
 * names and shapes (`embed_tokens.weight`, `layers.0.token_mixer.qkvu_proj.weight`, … as
 * F32, so `safetensors.torch.load_file` gives a state dict), the AdamW moments under
 * `optimizer.<param>.exp_avg` / `optimizer.<param>.exp_avg_sq`, and in `__metadata__`
 * everything else needed to continue exactly: step, seed, data loader position, model and
 * train configs, the run's options and the format version.
 * @module
 */
import {
  SafetensorsFile,
  type SafetensorsTensor,
  writeSafetensors,
} from "../checkpoint/safetensors.ts";
import type { LoaderPosition } from "../data/loader.ts";
import { type ModelConfig, validateModelConfig } from "../model/config.ts";
import type { NamedArrays, TrainConfig, TrainerState } from "../train/types.ts";
import type { TrainOptions } from "./options.ts";

/** Value of the `format` metadata key. */
export const CHECKPOINT_FORMAT = "lasp-train-checkpoint";
/** Bumped when the layout changes; readers reject other versions. */
export const CHECKPOINT_VERSION = 1;
/** Prefix of optimizer tensors in the file. */
export const OPTIMIZER_PREFIX = "optimizer.";

/** What a checkpoint holds. */
export interface Checkpoint {
  /** Parameters, optimizer moments and step. */
  state: TrainerState;
  /** The model. */
  model: ModelConfig;
  /** The optimization settings. */
  train: TrainConfig;
  /** Where the training data loader stands after `state.step` steps. */
  loader: LoaderPosition;
  /** The options of the run that wrote it. */
  options: Partial<TrainOptions>;
}

/** The metadata part of a checkpoint (readable without loading tensors). */
export type CheckpointMeta = Omit<Checkpoint, "state"> & { step: number };

/** File name of the checkpoint after `step` steps (sorts by step). */
export function checkpointName(step: number): string {
  return `checkpoint-${String(step).padStart(7, "0")}.safetensors`;
}

function f32(name: string, a: { data: Float32Array; shape: number[] }): SafetensorsTensor {
  const n = a.shape.reduce((x, y) => x * y, 1);
  if (a.data.length !== n) {
    throw new Error(
      `Checkpoint tensor "${name}" has ${a.data.length} values for shape [${a.shape.join(", ")}]`,
    );
  }
  return { dtype: "F32", shape: a.shape, data: a.data };
}

/** Writes `checkpoint` to `path` (atomically). */
export async function saveCheckpoint(path: string, checkpoint: Checkpoint): Promise<void> {
  const { state } = checkpoint;
  const tensors: Record<string, SafetensorsTensor> = {};
  for (const [name, a] of Object.entries(state.params)) {
    if (name.startsWith(OPTIMIZER_PREFIX)) {
      throw new Error(`Parameter name "${name}" clashes with the "${OPTIMIZER_PREFIX}" prefix`);
    }
    tensors[name] = f32(name, a);
  }
  for (const [name, a] of Object.entries(state.optimizer)) {
    tensors[OPTIMIZER_PREFIX + name] = f32(name, a);
  }
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    format_version: String(CHECKPOINT_VERSION),
    step: String(state.step),
    seed: String(checkpoint.train.seed),
    loader: JSON.stringify(checkpoint.loader),
    model_config: JSON.stringify(checkpoint.model),
    train_config: JSON.stringify(checkpoint.train),
    options: JSON.stringify(checkpoint.options),
  };
  await writeSafetensors(path, tensors, { metadata });
}

function metaOf(path: string, metadata: Record<string, string>): CheckpointMeta {
  const fail = (why: string): never => {
    throw new Error(`${path} is not a usable training checkpoint: ${why}`);
  };
  if (metadata.format !== CHECKPOINT_FORMAT) {
    fail(`metadata format is ${JSON.stringify(metadata.format)}, expected "${CHECKPOINT_FORMAT}"`);
  }
  if (metadata.format_version !== String(CHECKPOINT_VERSION)) {
    fail(`format_version ${metadata.format_version}, this reader supports ${CHECKPOINT_VERSION}`);
  }
  const json = (key: string): Record<string, unknown> => {
    try {
      const v = JSON.parse(metadata[key] ?? "");
      if (typeof v === "object" && v !== null && !Array.isArray(v)) return v;
    } catch { /* reported below */ }
    return fail(`metadata "${key}" is not a JSON object`);
  };
  const step = Number(metadata.step);
  if (!Number.isSafeInteger(step) || step < 0) fail(`metadata step ${metadata.step} is invalid`);
  const loader = json("loader") as unknown as LoaderPosition;
  for (const k of ["seed", "epoch", "cursor"] as const) {
    if (!Number.isSafeInteger(loader[k])) fail(`loader position lacks an integer ${k}`);
  }
  return {
    step,
    model: validateModelConfig(json("model_config"), `${path} model_config`),
    train: json("train_config") as unknown as TrainConfig,
    loader,
    options: json("options") as Partial<TrainOptions>,
  };
}

/** Reads only the metadata of the checkpoint at `path`. */
export async function readCheckpointMeta(path: string): Promise<CheckpointMeta> {
  const file = await openCheckpoint(path);
  try {
    return metaOf(path, file.header.metadata);
  } finally {
    file.close();
  }
}

async function openCheckpoint(path: string): Promise<SafetensorsFile> {
  try {
    return await SafetensorsFile.open(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`Checkpoint ${path} does not exist`);
    throw e;
  }
}

/** Reads the checkpoint at `path` (every tensor must be F32). */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  const file = await openCheckpoint(path);
  try {
    const meta = metaOf(path, file.header.metadata);
    const params: NamedArrays = {}, optimizer: NamedArrays = {};
    for (const name of file.names) {
      const t = await file.read(name);
      if (t.dtype !== "F32") {
        throw new Error(`${path}: tensor "${name}" is ${t.dtype}, checkpoints hold F32`);
      }
      const entry = { data: t.data as Float32Array, shape: [...t.shape] };
      if (name.startsWith(OPTIMIZER_PREFIX)) {
        optimizer[name.slice(OPTIMIZER_PREFIX.length)] = entry;
      } else params[name] = entry;
    }
    const { step, ...rest } = meta;
    return { state: { params, optimizer, step }, ...rest };
  } finally {
    file.close();
  }
}

/**
 * The checkpoint `--resume` means: a file as given, or in a directory the checkpoint of the
 * highest step.
 */
export async function resolveCheckpointPath(path: string): Promise<string> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    throw new Error(`Invalid --resume ${path}: no such file or directory`);
  }
  if (!info.isDirectory) return path;
  let best: { name: string; step: number } | undefined;
  for await (const e of Deno.readDir(path)) {
    const m = e.isFile ? e.name.match(/^checkpoint-(\d+)\.safetensors$/) : null;
    if (m && (!best || Number(m[1]) > best.step)) best = { name: e.name, step: Number(m[1]) };
  }
  if (!best) {
    throw new Error(`Invalid --resume ${path}: the directory holds no checkpoint-*.safetensors`);
  }
  return `${path}/${best.name}`;
}
