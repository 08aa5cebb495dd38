/**
 * generate() decodes recurrently (prefill, then one token per forward): it picks the tokens
 * that rerunning the full forward (Model.forward with LaspAttention) on the whole growing
 * sequence picks — greedy and sampled with the same seed, both model kinds, a prompt of 60
 * tokens and 8 new ones, so decoding crosses the LA chunk boundary at 64 and runs past seqLen
 * (the context is not truncated). Sampling draws from softmax(logits / T); bad input errors.
 */
import { deepEqual, equal, rejects } from "node:assert/strict";
import { initParams } from "../lib/model/init.ts";
import { generate, sampleToken } from "../lib/model/generate.ts";
import { Rng } from "../lib/util/rng.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import { tinyModelConfig } from "../lib/testing/tiny_model.ts";
import { rerunDecoding } from "../lib/testing/rerun_decoding.ts";
import { testGpu } from "./_gpu.ts";

for (const kind of ["tnl", "linear"] as const) {
  Deno.test(`generate equals rerunning the full forward per token (${kind}, greedy and T = 0.8)`, async () => {
    const gpu = await testGpu();
    const config = tinyModelConfig({ model: kind, seqLen: 32, initStd: 0.5 });
    const params = initParams(config, 9);
    const rng = new Rng(2);
    const prompt = Array.from({ length: 60 }, () => rng.int(config.vocabSize));
    for (const temperature of [0, 0.8]) {
      const o = { prompt, maxTokens: 8, temperature, seed: 7 };
      const out = await generate(gpu, { model: config, params, ...o });
      const ref = await rerunDecoding(gpu, { model: config, params, ...o });
      deepEqual(out, ref, `temperature ${temperature}`);
    }
  });
}

Deno.test("sampling at temperature T draws from softmax(logits / T)", () => {
  const logits = [1, 0, -1, 2];
  const rng = new Rng(5);
  const counts = [0, 0, 0, 0];
  const draws = 20000;
  for (let i = 0; i < draws; i++) counts[sampleToken(logits, 0.5, rng)]++;
  const w = logits.map((l) => Math.exp(l / 0.5));
  const total = w.reduce((a, b) => a + b, 0);
  // binomial standard error of the largest share ≈ 0.003: 3% relative RMS is ≫ noise
  assertClose(counts.map((c) => c / draws), w.map((x) => x / total), {
    rms: 0.03,
    label: "shares",
  });
  equal(sampleToken(logits, 0, rng), 3);
});

Deno.test("generate rejects bad prompts and settings", async () => {
  const gpu = await testGpu();
  const config = tinyModelConfig({ seqLen: 8 });
  const params = initParams(config, 9);
  const base = { model: config, params, maxTokens: 1, temperature: 1, seed: 1 };
  await rejects(generate(gpu, { ...base, prompt: [] }), /at least one token/);
  await rejects(
    generate(gpu, { ...base, prompt: [256] }),
    /prompt id 256 is outside the vocabulary \[0, 256\)/,
  );
  await rejects(
    generate(gpu, { ...base, prompt: [1], temperature: -1 }),
    /temperature -1 must be ≥ 0/,
  );
  await rejects(
    generate(gpu, { ...base, prompt: [1], maxTokens: 1.5 }),
    /maxTokens 1.5 must be an integer ≥ 0/,
  );
  deepEqual(await generate(gpu, { ...base, prompt: [1], maxTokens: 0 }), []);
});
