/**
 * The whole model against its float64 definition (lib/model/reference.ts) at tiny size
 * (vocab 256 with ids below 32, dim 16, 2 heads, 2 layers, batch 2, n = 24): the GPU loss equals the float64 loss, and
 * the GPU gradients equal central differences of the float64 loss on a random subset of
 * every parameter tensor's entries. Both model kinds, with and without norm gains and tied
 * embeddings, with and without recomputation, the loss head whole or in uneven chunks. Seen on lavapipe: loss ≤ 1.1e-7 relative,
 * gradients ≤ 5e-6 relative RMS (asserted: 2e-6 and 3e-5).
 */
import { equal } from "node:assert/strict";
import { downloadTensors } from "../mod.ts";
import { Communicator } from "../lib/dist/communicator.ts";
import { LaspAttention } from "../lib/lasp/attention.ts";
import type { ModelConfig } from "../lib/model/config.ts";
import { initParams } from "../lib/model/init.ts";
import { type LossResult, Model } from "../lib/model/model.ts";
import { modelLossReference } from "../lib/model/reference.ts";
import { rowChunks } from "../lib/model/block.ts";
import { Rng } from "../lib/util/rng.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import { tinyModelConfig, uploadParams } from "../lib/testing/tiny_model.ts";
import { testGpu } from "./_gpu.ts";

const CASES = [
  { model: "tnl", normGain: false, tieEmbeddings: true, recompute: false, chunk: 0 },
  {
    model: "tnl",
    normGain: true,
    tieEmbeddings: false,
    recompute: true,
    gateActivation: "silu",
    chunk: 17,
  },
  { model: "linear", normGain: false, tieEmbeddings: true, recompute: false, chunk: 17 },
  { model: "linear", normGain: true, tieEmbeddings: false, recompute: true, chunk: 0 },
] as const;

for (const kase of CASES) {
  const { recompute, chunk, ...overrides } = kase;
  Deno.test(`model loss and gradients match float64 (${JSON.stringify(kase)})`, async () => {
    const gpu = await testGpu();
    const config = tinyModelConfig({ ...overrides, seqLen: 24, initStd: 0.3 });
    // vocab 256 is the byte tokenizer's minimum; ids stay below 32 to keep the FD check cheap
    const batch = 2, n = 24;
    const rng = new Rng(17);
    const inputs = Uint32Array.from({ length: batch * n }, () => rng.int(32));
    const targets = Uint32Array.from({ length: batch * n }, () => rng.int(32));
    const host = initParams(config, 5);
    const model = new Model(gpu, {
      config,
      attention: new LaspAttention(Communicator.solo()),
      params: uploadParams(gpu, host),
      logitsChunkRows: chunk || undefined, // 17: the loss head runs in 3 uneven chunks
    });
    await model.zeroGrads();
    const tokens = { inputs, targets, batch };
    const { stats, count } = await model.forward(tokens, {
      needsGrad: true,
      recompute,
      lossScale: 1 / (batch * n),
    }) as LossResult;
    equal(count, batch * n);
    equal(stats.length, chunk ? Math.ceil(count / chunk) : 1);
    await model.backward();
    const names = model.specs.map((s) => s.name);
    const downloaded = await downloadTensors(gpu, [
      ...names.map((k) => model.grads.get(k)!),
      ...stats,
    ]);
    const grads = downloaded.slice(0, names.length) as Float32Array[];
    const lossSum = downloaded.slice(names.length).reduce((a, s) => a + s[2], 0);

    const ref = Object.fromEntries(
      Object.entries(host).map(([k, v]) => [k, Float64Array.from(v.data)]),
    );
    const loss = modelLossReference(config, ref, tokens);
    assertClose([lossSum / count], [loss], { rms: 2e-6, label: "loss" });

    const h = 1e-4;
    names.forEach((name, i) => {
      const p = ref[name];
      // embedding rows of ids in use (others have zero gradient): sample among the first 32 rows
      const range = name.includes("embed") || name.includes("lm_head") ? 32 * config.dim : p.length;
      const picks = Array.from({ length: 12 }, () => rng.int(range));
      const fd = picks.map((j) => {
        const keep = p[j];
        p[j] = keep + h;
        const up = modelLossReference(config, ref, tokens);
        p[j] = keep - h;
        const down = modelLossReference(config, ref, tokens);
        p[j] = keep;
        return (up - down) / (2 * h);
      });
      assertClose(picks.map((j) => grads[i][j]), fd, { rms: 3e-5, label: `d ${name}` });
    });
    for (const s of stats) s.release();
    model.destroy();
  });
}

/** Loss sum and every gradient of one forward + backward (params uploaded fresh from `host`). */
async function lossAndGrads(
  options: {
    config: ModelConfig;
    host: ReturnType<typeof initParams>;
    tokens: { inputs: Uint32Array; targets: Uint32Array; batch: number };
    recompute: boolean;
    rowChunkBytes?: number;
  },
): Promise<Float32Array[]> {
  const gpu = await testGpu();
  const model = new Model(gpu, {
    config: options.config,
    attention: new LaspAttention(Communicator.solo()),
    params: uploadParams(gpu, options.host),
    rowChunkBytes: options.rowChunkBytes,
  });
  await model.zeroGrads();
  const { stats } = await model.forward(options.tokens, {
    needsGrad: true,
    recompute: options.recompute,
    lossScale: 1 / options.tokens.inputs.length,
  }) as LossResult;
  await model.backward();
  const out = await downloadTensors(gpu, [
    ...stats,
    ...model.specs.map((s) => model.grads.get(s.name)!),
  ]) as Float32Array[];
  for (const s of stats) s.release();
  model.destroy();
  return [
    Float32Array.of(out.slice(0, stats.length).reduce((a, s) => a + s[2], 0)),
    ...out.slice(stats.length),
  ];
}

for (const recompute of [false, true]) {
  Deno.test(`blocks in row chunks (4, the last partial) equal whole rows (recompute ${recompute})`, async () => {
    // rows = 2 · 100 = 200; widest activation 4D = 64 floats = 256 B a row; 16 KiB = 64 rows
    const config = tinyModelConfig({ gluDim: 40, seqLen: 100, initStd: 0.3 });
    const rowChunkBytes = 64 * 64 * 4;
    equal(rowChunks(200, 64, rowChunkBytes).map(([, n]) => n).join(), "64,64,64,8");
    const rng = new Rng(3);
    const ids = () => Uint32Array.from({ length: 200 }, () => rng.int(256));
    const tokens = { inputs: ids(), targets: ids(), batch: 2 };
    const host = initParams(config, 9);
    const whole = await lossAndGrads({ config, host, tokens, recompute });
    const chunked = await lossAndGrads({ config, host, tokens, recompute, rowChunkBytes });
    assertClose(chunked[0], whole[0], { rms: 1e-6, label: "loss" });
    for (let i = 1; i < whole.length; i++) {
      assertClose(chunked[i], whole[i], { rms: 1e-6, label: `gradient ${i - 1}` });
    }
  });
}
