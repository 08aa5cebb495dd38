import { rejects } from "node:assert/strict";
import { downloadTensors, uploadTensor } from "../mod.ts";
import { randomArray } from "../lib/testing/reference.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import { adamwStep, gradNormClip } from "../lib/ops/adamw/adamw.ts";
import { adamwReference, gradNormReference } from "../lib/ops/adamw/reference.ts";
import { testGpu } from "./_gpu.ts";

const sizes = [1, 257, 70001, 3 * 5];

Deno.test("global gradient norm and clip scale match float64", async () => {
  const gpu = await testGpu();
  const grads = sizes.map((n, i) => randomArray(n, 40 + i, -0.1, 0.1));
  const tensors = grads.map((g) => uploadTensor(gpu, g, [g.length]));
  const norm = gradNormReference(grads, 0)[0];
  for (const maxNorm of [0, norm / 4, norm * 4]) {
    const clip = await gradNormClip(gpu, tensors, { maxNorm });
    const [got] = await downloadTensors(gpu, [clip]);
    assertClose(got, gradNormReference(grads, maxNorm), { rms: 1e-6, label: `clip at ${maxNorm}` });
    clip.release();
  }
  for (const t of tensors) t.release();
  await rejects(() => gradNormClip(gpu, [], { maxNorm: -1 }), /maxNorm -1 must be ≥ 0/);
});

for (const weightDecay of [0, 0.1]) {
  Deno.test(`AdamW steps with clipping match float64 (weight decay ${weightDecay})`, async () => {
    const gpu = await testGpu();
    const h = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay };
    const states = sizes.map((n, i) => ({
      param: Float64Array.from(randomArray(n, 60 + i)),
      m: new Float64Array(n),
      v: new Float64Array(n),
    }));
    const gpuStates = states.map((s) => ({
      param: uploadTensor(gpu, Float32Array.from(s.param), [s.param.length]),
      m: uploadTensor(gpu, new Float32Array(s.param.length), [s.param.length]),
      v: uploadTensor(gpu, new Float32Array(s.param.length), [s.param.length]),
    }));
    for (let step = 1; step <= 3; step++) {
      const grads = sizes.map((n, i) => randomArray(n, 100 * step + i, -1, 1));
      const gradTensors = grads.map((g) => uploadTensor(gpu, g, [g.length]));
      const maxNorm = 5;
      const clip = await gradNormClip(gpu, gradTensors, { maxNorm });
      const [, gradScale] = gradNormReference(grads, maxNorm);
      for (let i = 0; i < sizes.length; i++) {
        await adamwStep(gpu, { ...gpuStates[i], grad: gradTensors[i], clip }, { ...h, step });
        const next = adamwReference({ ...states[i], grad: grads[i] }, { ...h, step, gradScale });
        Object.assign(states[i], next);
      }
      for (const t of [...gradTensors, clip]) t.release();
    }
    const flat = gpuStates.flatMap((s) => [s.param, s.m, s.v]);
    const got = await downloadTensors(gpu, flat);
    states.forEach((s, i) => {
      assertClose(got[3 * i], s.param, { rms: 1e-6, label: `param ${sizes[i]}` });
      assertClose(got[3 * i + 1], s.m, { rms: 1e-6, label: `m ${sizes[i]}` });
      assertClose(got[3 * i + 2], s.v, { rms: 1e-6, label: `v ${sizes[i]}` });
    });
    for (const t of flat) t.release();
  });
}

Deno.test("AdamW without a clip tensor uses the raw gradient; bad hyperparameters are rejected", async () => {
  const gpu = await testGpu();
  const n = 33;
  const p0 = randomArray(n, 1), g = randomArray(n, 2);
  const [param, grad, m, v] = [p0, g, new Float32Array(n), new Float32Array(n)].map((a) =>
    uploadTensor(gpu, a, [n])
  );
  const h = { lr: 0.1, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.5, step: 1 };
  await adamwStep(gpu, { param, grad, m, v }, h);
  const [gp] = await downloadTensors(gpu, [param]);
  const ref = adamwReference(
    { param: p0, grad: g, m: new Float64Array(n), v: new Float64Array(n) },
    h,
  );
  assertClose(gp, ref.param, { rms: 1e-6, label: "param" });
  await rejects(
    () => adamwStep(gpu, { param, grad, m, v }, { ...h, step: 0 }),
    /step 0 must be an integer ≥ 1/,
  );
  await rejects(
    () => adamwStep(gpu, { param, grad, m, v }, { ...h, beta2: 1 }),
    /beta2 1 must be in \[0, 1\)/,
  );
  await rejects(() => adamwStep(gpu, { param, grad: m, m, v }, h), /m and grad share one buffer/);
  for (const t of [param, grad, m, v]) t.release();
});
