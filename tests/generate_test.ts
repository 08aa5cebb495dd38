import { equal, rejects } from "node:assert/strict";
import { resolveModelConfig } from "../lib/model/config.ts";
import { initParams } from "../lib/model/init.ts";
import { generate, sampleToken } from "../lib/model/generate.ts";
import { modelLogitsReference } from "../lib/model/reference.ts";
import { Rng } from "../lib/util/rng.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import { testGpu } from "./_gpu.ts";

const config = resolveModelConfig({
  tokenizer: "bytes",
  vocabSize: 256,
  dim: 16,
  heads: 2,
  layers: 2,
  gluDim: 24,
  seqLen: 8,
  initStd: 0.5,
});

Deno.test("greedy generation follows the float64 model's argmax, window of seqLen tokens", async () => {
  const gpu = await testGpu();
  const params = initParams(config, 9);
  const prompt = [3, 1, 4, 1, 5];
  const out = await generate(gpu, {
    model: config,
    params,
    prompt,
    maxTokens: 6,
    temperature: 0,
    seed: 1,
  });
  equal(out.length, 6);
  const ref = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, v.data]));
  const tokens = [...prompt];
  for (let i = 0; i < 6; i++) {
    const context = tokens.slice(-config.seqLen);
    const logits = modelLogitsReference(config, ref, { inputs: context, batch: 1 });
    const last = logits.subarray((context.length - 1) * 256);
    let best = 0;
    for (let j = 1; j < 256; j++) if (last[j] > last[best]) best = j;
    equal(out[i], best, `token ${i}`);
    tokens.push(best);
  }
});

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
});
