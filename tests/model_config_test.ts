import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { PRESETS, resolveModelConfig, validateModelConfig } from "../lib/model/config.ts";
import { alibiSlopes, decayRates } from "../lib/model/decay.ts";
import { parameterCount, parameterSpecs } from "../lib/model/params.ts";

/** Parameters counted from the block formula, independently of parameterSpecs. */
function formulaCount(v: number, d: number, layers: number, glu: number, tied = true): number {
  const block = 4 * d * d + d * d + 3 * d * glu; // qkvu, out, l1 l2 l3
  return v * d * (tied ? 1 : 2) + layers * block;
}

Deno.test("presets resolve to consistent configs with the expected sizes", () => {
  const expected: Record<string, number> = {
    tiny: formulaCount(256, 128, 2, 256),
    "125m": formulaCount(50257, 768, 12, 2048),
    "400m": formulaCount(50257, 1024, 24, 2816),
    "1b": formulaCount(50257, 2048, 16, 5632),
  };
  for (const preset of Object.keys(PRESETS)) {
    const c = resolveModelConfig({}, { preset });
    deepStrictEqual(parameterCount(c), expected[preset], preset);
    deepStrictEqual(validateModelConfig(JSON.parse(JSON.stringify(c))), c);
  }
  // The sizes the names promise.
  const millions = (p: string) => parameterCount(resolveModelConfig({}, { preset: p })) / 1e6;
  ok(Math.abs(millions("125m") - 130.7) < 0.1 && Math.abs(millions("400m") - 384.9) < 0.1);
  ok(Math.abs(millions("1b") - 992.2) < 0.1 && millions("tiny") < 1);
});

Deno.test("model kind sets feature map and decay; derived headDim; untied head and gains", () => {
  const linear = resolveModelConfig({ model: "linear" }, { preset: "tiny" });
  deepStrictEqual([linear.featureMap, linear.decay], ["elu1", "none"]);
  const c = resolveModelConfig({ dim: 96, heads: 3, tieEmbeddings: false, normGain: true }, {
    preset: "tiny",
  });
  deepStrictEqual(c.headDim, 32);
  const names = parameterSpecs(c).map((s) => s.name);
  ok(names.includes("lm_head.weight") && names.includes("final_norm.weight"));
  deepStrictEqual(
    parameterSpecs(c).filter((s) => !s.decay).map((s) => s.name),
    [
      "layers.0.token_norm.weight",
      "layers.0.channel_norm.weight",
      "layers.1.token_norm.weight",
      "layers.1.channel_norm.weight",
      "final_norm.weight",
    ],
  );
  deepStrictEqual(parameterCount(c), formulaCount(256, 96, 2, 256, false) + 5 * 96);
});

Deno.test("config rejects unknown keys and inconsistent values with one-line messages", () => {
  const cases: [unknown, RegExp, string?][] = [
    [{ dims: 64 }, /Unknown key "dims" in model config: known keys are model, tokenizer,/],
    [{ dim: 100, heads: 3 }, /Inconsistent model config: dim 100 is not divisible by heads 3$/],
    [{ headDim: 48 }, /heads × headDim = 12 × 48 = 576 must equal dim 768$/],
    [{ vocabSize: 1000 }, /vocabSize 1000 is smaller than the 50257 ids of tokenizer "gpt2"$/],
    [{ model: "linear", decay: "tnl" }, /model "linear" has no decay: decay must be "none"/],
    [{ model: "rwkv" }, /Invalid model config model = "rwkv": must be one of "tnl", "linear"$/],
    [{ layers: 2.5 }, /Invalid model config layers = 2.5: must be a positive integer$/],
    [{ tieEmbeddings: "yes" }, /tieEmbeddings = "yes": must be true or false$/],
    [{ dropout: 0.1 }, /dropout = 0.1: only 0 is supported/],
    [{ normEps: 0 }, /normEps = 0: must be in \(0, 1\)$/],
    [[1], /Invalid model config: expected an object of settings/],
    [{}, /Unknown preset "7b": choose one of tiny, 125m, 400m, 1b$/, "7b"],
  ];
  for (const [overrides, message, preset] of cases) {
    throws(() => resolveModelConfig(overrides, { preset }), message);
  }
  throws(
    () => resolveModelConfig({ dims: 1 }, { source: "--config run.json" }),
    /Unknown key "dims" in --config run.json/,
  );
  throws(() => validateModelConfig({ dim: 64 }), /Incomplete model config: missing model,/);
});

Deno.test("TNL decay follows ALiBi slopes per head and fades with depth", () => {
  deepStrictEqual(alibiSlopes(8), [1, 2, 3, 4, 5, 6, 7, 8].map((i) => 2 ** -i));
  // 6 heads: the 4-head slopes, then every other 8-head slope (ALiBi's rule).
  deepStrictEqual(alibiSlopes(6), [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]);
  const rates = decayRates({ decay: "tnl", layers: 3, heads: 2 });
  const slopes = [2 ** -4, 2 ** -8];
  const factor = [1 + 1e-5, 0.5 + 1e-5, 1e-5];
  rates.forEach((row, l) =>
    row.forEach((lambda, h) => ok(Math.abs(lambda - Math.exp(-slopes[h] * factor[l])) < 1e-15))
  );
  ok(rates[0][0] < rates[1][0] && rates[1][0] < rates[2][0] && rates[2][0] < 1);
  deepStrictEqual(decayRates({ decay: "none", layers: 2, heads: 3 }), [[1, 1, 1], [1, 1, 1]]);
  deepStrictEqual(decayRates({ decay: "tnl", layers: 1, heads: 1 }), [[
    Math.exp(-(2 ** -8) * (1 + 1e-5)),
  ]]);
});
