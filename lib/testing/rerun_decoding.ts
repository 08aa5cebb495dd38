/**
 * Decoding by its definition, the quadratic way: each new token comes from one full forward
 * ({@linkcode LaspAttention}, T = 1) over the prompt and every token sampled so far. The
 * reference `generate` (recurrent decoding) is tested against, and its baseline in
 * bench/generate_bench.ts; same options, same sampling, same random stream.
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { downloadTensors, type Tensor } from "../gpu/tensor.ts";
import { Communicator } from "../dist/communicator.ts";
import { LaspAttention } from "../lasp/attention.ts";
import { type GenerateOptions, sampleToken } from "../model/generate.ts";
import { Model } from "../model/model.ts";
import { Rng } from "../util/rng.ts";
import { uploadParams } from "./tiny_model.ts";

/** The `maxTokens` ids that rerunning the whole forward per token picks (prompt not repeated). */
export async function rerunDecoding(gpu: Gpu, options: GenerateOptions): Promise<number[]> {
  const model = new Model(gpu, {
    config: options.model,
    attention: new LaspAttention(Communicator.solo()),
    params: uploadParams(gpu, options.params),
  });
  const rng = new Rng(options.seed);
  const tokens = [...options.prompt];
  try {
    for (let i = 0; i < options.maxTokens; i++) {
      const inputs = Uint32Array.from(tokens);
      const logits = await model.forward({ inputs, batch: 1 }, { needsGrad: false }) as Tensor; // [n, V]
      const [last] = await downloadTensors(gpu, [logits.rows(inputs.length - 1, 1)]); // [1, V]
      logits.release();
      tokens.push(sampleToken(last, options.temperature, rng));
    }
  } finally {
    model.destroy();
  }
  return tokens.slice(options.prompt.length);
}
