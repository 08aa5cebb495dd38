/**
 * Sampling from a trained model on one device, decoded as the RNN linear attention is at
 * inference ({@linkcode RecurrentAttention}): one forward over the prompt (prefill) leaves each
 * layer's state S [B, H, dk, dv]; each new token then costs one forward over that token alone,
 * continuing from the states. Time per token is constant and the context is unbounded: every
 * token of the prompt and of the sample conditions the next one, also beyond `seqLen` (the
 * training length; past it the model extrapolates as linear attention does).
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { downloadTensors, type Tensor, uploadTensor } from "../gpu/tensor.ts";
import { Rng } from "../util/rng.ts";
import type { NamedArrays } from "../train/types.ts";
import type { ModelConfig } from "./config.ts";
import { Model } from "./model.ts";
import { RecurrentAttention } from "./recurrent_attention.ts";

/** Options of {@linkcode generate}. */
export interface GenerateOptions {
  /** Model configuration of the parameters. */
  model: ModelConfig;
  /** Parameters by checkpoint name (`TrainerState.params`). */
  params: NamedArrays;
  /** Token ids to continue (at least one). */
  prompt: number[];
  /** Tokens to generate. */
  maxTokens: number;
  /** Softmax temperature; 0 picks the most likely token. */
  temperature: number;
  /** Seed of the sampling. */
  seed: number;
}

/** Index drawn from softmax(logits / temperature), or the argmax at temperature 0. */
export function sampleToken(logits: ArrayLike<number>, temperature: number, rng: Rng): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  if (temperature === 0) return best;
  const weights = new Float64Array(logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    total += weights[i] = Math.exp((logits[i] - logits[best]) / temperature);
  }
  let r = rng.float() * total;
  for (let i = 0; i < weights.length; i++) {
    r -= weights[i];
    if (r < 0) return i;
  }
  return best;
}

/** The prompt's continuation: `maxTokens` new ids (the prompt is not repeated). */
export async function generate(gpu: Gpu, options: GenerateOptions): Promise<number[]> {
  const { model: c, prompt, maxTokens, temperature } = options;
  if (prompt.length === 0) throw new Error("generate: the prompt must hold at least one token");
  if (!Number.isInteger(maxTokens) || maxTokens < 0) {
    throw new Error(`generate: maxTokens ${maxTokens} must be an integer ≥ 0`);
  }
  if (!(temperature >= 0)) throw new Error(`generate: temperature ${temperature} must be ≥ 0`);
  for (const id of prompt) {
    if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) {
      throw new Error(`generate: prompt id ${id} is outside the vocabulary [0, ${c.vocabSize})`);
    }
  }
  const params = new Map<string, Tensor>();
  for (const [name, a] of Object.entries(options.params)) {
    params.set(name, uploadTensor(gpu, a.data, a.shape));
  }
  const attention = new RecurrentAttention();
  const model = new Model(gpu, { config: c, attention, params });
  const rng = new Rng(options.seed);
  const out: number[] = [];
  try {
    let inputs = Uint32Array.from(prompt); // the prompt, then the last sampled token
    for (let i = 0; i < maxTokens; i++) {
      const logits = await model.forward({ inputs, batch: 1 }, { needsGrad: false }) as Tensor; // [n, V]
      const [last] = await downloadTensors(gpu, [logits.rows(inputs.length - 1, 1)]); // [1, V]
      logits.release();
      const next = sampleToken(last, temperature, rng);
      out.push(next);
      inputs = Uint32Array.of(next);
    }
  } finally {
    attention.reset();
    model.destroy();
  }
  return out;
}
