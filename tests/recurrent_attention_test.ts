/**
 * Recurrent decoding against its definition: a model whose attention carries each layer's
 * state from call to call (RecurrentAttention), fed a sequence in pieces — a prompt of 70
 * tokens (two LA chunks of 64), five single tokens, then three at once — gives at every
 * position the logits of one full-sequence forward (LaspAttention), and those of the float64
 * model. Both model kinds, batch 2.
 */
import { equal, rejects } from "node:assert/strict";
import { Communicator } from "../lib/dist/communicator.ts";
import { downloadTensors, type Tensor } from "../lib/gpu/tensor.ts";
import { LaspAttention } from "../lib/lasp/attention.ts";
import { initParams } from "../lib/model/init.ts";
import { Model } from "../lib/model/model.ts";
import { RecurrentAttention } from "../lib/model/recurrent_attention.ts";
import { modelLogitsReference } from "../lib/model/reference.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import { tinyModelConfig, uploadParams } from "../lib/testing/tiny_model.ts";
import { Rng } from "../lib/util/rng.ts";
import { testGpu } from "./_gpu.ts";

const PIECES = [70, 1, 1, 1, 1, 1, 3];
const BATCH = 2;

/** Columns [start, start + n) of every row of a [batch, N] array. */
function columns(ids: Uint32Array, batch: number, start: number, n: number): Uint32Array {
  const N = ids.length / batch;
  const out = new Uint32Array(batch * n);
  for (let b = 0; b < batch; b++) out.set(ids.subarray(b * N + start, b * N + start + n), b * n);
  return out;
}

for (const kind of ["tnl", "linear"] as const) {
  Deno.test(`recurrent decoding in pieces equals the full forward at every position (${kind})`, async () => {
    const gpu = await testGpu();
    const config = tinyModelConfig({ model: kind, seqLen: 64, initStd: 0.5 });
    const V = config.vocabSize, N = PIECES.reduce((a, b) => a + b, 0);
    const host = initParams(config, 4);
    const rng = new Rng(11);
    const ids = Uint32Array.from({ length: BATCH * N }, () => rng.int(V)); // [B, N]

    const full = new Model(gpu, {
      config,
      attention: new LaspAttention(Communicator.solo()),
      params: uploadParams(gpu, host),
    });
    const fullLogits = await full.forward({ inputs: ids, batch: BATCH }, {
      needsGrad: false,
    }) as Tensor; // [B·N, V]

    const attention = new RecurrentAttention();
    const model = new Model(gpu, { config, attention, params: uploadParams(gpu, host) });
    const pieces: Tensor[] = [];
    let start = 0;
    for (const n of PIECES) {
      const inputs = columns(ids, BATCH, start, n);
      pieces.push(await model.forward({ inputs, batch: BATCH }, { needsGrad: false }) as Tensor); // [B·n, V]
      start += n;
    }
    for (let l = 0; l < config.layers; l++) equal(attention.length(l), N);
    const [expected, ...got] = await downloadTensors(gpu, [fullLogits, ...pieces]);
    for (const t of [fullLogits, ...pieces]) t.release();
    attention.reset();
    equal(attention.length(0), 0);
    full.destroy();
    model.destroy();

    // reassemble the pieces' rows [B, n, V] into [B, N, V]
    const recurrent = new Float32Array(BATCH * N * V);
    start = 0;
    PIECES.forEach((n, i) => {
      for (let b = 0; b < BATCH; b++) {
        recurrent.set(got[i].subarray(b * n * V, (b + 1) * n * V), (b * N + start) * V);
      }
      start += n;
    });
    assertClose(recurrent, expected, { rms: 1e-5, label: `${kind} recurrent vs full forward` });
    const ref = Object.fromEntries(Object.entries(host).map(([k, v]) => [k, v.data]));
    const f64 = modelLogitsReference(config, ref, { inputs: ids, batch: BATCH });
    assertClose(recurrent, f64, { rms: 1e-5, label: `${kind} recurrent vs float64` });
  });
}

Deno.test("RecurrentAttention refuses training, and a new batch size without reset", async () => {
  const gpu = await testGpu();
  const config = tinyModelConfig({ seqLen: 8 });
  const attention = new RecurrentAttention();
  const model = new Model(gpu, {
    config,
    attention,
    params: uploadParams(gpu, initParams(config, 1)),
  });
  const ids = Uint32Array.of(1, 2, 3, 4);
  try {
    await rejects(
      model.forward({ inputs: ids, targets: ids, batch: 1 }, { needsGrad: true, lossScale: 1 }),
      /RecurrentAttention layer 0: needsGrad must be false/,
    );
    model.discard();
    attention.reset();
    const logits = await model.forward({ inputs: ids, batch: 2 }, { needsGrad: false }) as Tensor;
    logits.release();
    attention.clear(); // nothing kept for a backward: the states stay
    equal(attention.length(0), 2);
    await rejects(
      model.forward({ inputs: ids, batch: 1 }, { needsGrad: false }),
      /the carried state \[2, 2, 8, 8\] does not fit \[B, H, dk, dv\] = \[1, 2, 8, 8\]/,
    );
    await rejects(attention.backward(gpu, { dO: logits, layer: 1 }), /layer 1: no backward/);
  } finally {
    attention.reset();
    model.destroy();
  }
});
