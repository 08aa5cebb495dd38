/**
 * The tiny model the tests and the benchmarks' validations check against float64: byte
 * vocabulary (256 ids), dim 16, 2 heads, 2 layers, GLU width 24 — small enough that the
 * float64 reference (lib/model/reference.ts) and central differences of it take milliseconds.
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { type Tensor, uploadTensor } from "../gpu/tensor.ts";
import { type ModelConfig, resolveModelConfig } from "../model/config.ts";
import type { NamedArrays } from "../train/types.ts";

/** The tiny model's sizes (everything else: the defaults, or the overrides). */
export const TINY_MODEL: Readonly<Partial<ModelConfig>> = Object.freeze({
  tokenizer: "bytes",
  vocabSize: 256,
  dim: 16,
  heads: 2,
  layers: 2,
  gluDim: 24,
});

/** The tiny config with `overrides` (model kind, seqLen, initStd…), resolved and validated. */
export function tinyModelConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  return resolveModelConfig({ ...TINY_MODEL, ...overrides });
}

/** Host parameters (e.g. from `initParams`) as GPU tensors by name: a `Model`'s `params`. */
export function uploadParams(gpu: Gpu, host: NamedArrays): Map<string, Tensor> {
  const params = new Map<string, Tensor>();
  for (const [name, a] of Object.entries(host)) {
    params.set(name, uploadTensor(gpu, a.data, a.shape));
  }
  return params;
}
