import { downloadTensors, uploadTensor } from "../mod.ts";
import { randomArray } from "../lib/testing/reference.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import { srmsnormBackward, srmsnormForward } from "../lib/ops/srmsnorm/srmsnorm.ts";
import { normGateBackward, normGateForward } from "../lib/ops/srmsnorm/norm_gate.ts";
import {
  type GateActivation,
  normGateBackwardReference,
  normGateReference,
  srmsnormBackwardReference,
  srmsnormReference,
} from "../lib/ops/srmsnorm/reference.ts";
import { testGpu } from "./_gpu.ts";
import { throws } from "node:assert/strict";

const cases: [number, number][] = [[1, 1], [3, 7], [5, 255], [2, 257], [4, 1000], [2, 4096]];
const eps = 1e-6;
// With d = 1, y = x/|x| up to eps: the true dx is ~eps and float32 returns cancellation noise
// of the same size, so the relative check of gradients starts at d = 3.
const gradOk = (d: number) => d > 1;

for (const withGain of [false, true]) {
  Deno.test(`srmsnorm forward and backward match float64 (gain=${withGain})`, async () => {
    const gpu = await testGpu();
    let seed = 100;
    for (const [rows, d] of cases) {
      const x = randomArray(rows * d, seed++, -2, 2), dy = randomArray(rows * d, seed++);
      const gain = withGain ? randomArray(d, seed++, 0.5, 1.5) : undefined;
      const tx = uploadTensor(gpu, x, [rows, d]), tdy = uploadTensor(gpu, dy, [rows, d]);
      const tg = gain ? uploadTensor(gpu, gain, [d]) : undefined;
      const { y, rstd } = await srmsnormForward(gpu, tx, { gain: tg, eps });
      const { dx, dgain } = await srmsnormBackward(gpu, { x: tx, rstd, dy: tdy }, { gain: tg });
      const outs = [y, rstd, dx, ...(dgain ? [dgain] : [])];
      const [gy, gr, gdx, gdg] = await downloadTensors(gpu, outs);
      const ref = srmsnormReference(x, { rows, d, eps, gain });
      const bref = srmsnormBackwardReference(x, dy, { rows, d, eps, gain });
      const label = `srmsnorm ${rows}x${d}`;
      assertClose(gy, ref.y, { rms: 1e-6, label: `${label} y` });
      assertClose(gr, ref.rstd, { rms: 1e-6, label: `${label} rstd` });
      if (gradOk(d)) assertClose(gdx, bref.dx, { rms: 3e-6, label: `${label} dx` });
      if (gdg) assertClose(gdg, bref.dgain, { rms: 3e-6, label: `${label} dgain` });
      for (const t of [tx, tdy, ...(tg ? [tg] : []), ...outs]) t.release();
    }
  });
}

Deno.test("srmsnorm gain gradient accumulates and rows beyond one grid dimension work", async () => {
  const gpu = await testGpu();
  const rows = gpu.limits.maxComputeWorkgroupsPerDimension + 3, d = 3;
  const x = randomArray(rows * d, 1, -2, 2), dy = randomArray(rows * d, 2);
  const gain = randomArray(d, 3, 0.5, 1.5), dg0 = randomArray(d, 4);
  const tx = uploadTensor(gpu, x, [rows, d]), tdy = uploadTensor(gpu, dy, [rows, d]);
  const tg = uploadTensor(gpu, gain, [d]), tdg = uploadTensor(gpu, dg0, [d]);
  const { y, rstd } = await srmsnormForward(gpu, tx, { gain: tg, eps });
  const { dx } = await srmsnormBackward(gpu, { x: tx, rstd, dy: tdy }, {
    gain: tg,
    dgain: tdg,
    accumulate: true,
  });
  const [gy, gdx, gdg] = await downloadTensors(gpu, [y, dx, tdg]);
  const ref = srmsnormReference(x, { rows, d, eps, gain });
  const bref = srmsnormBackwardReference(x, dy, { rows, d, eps, gain });
  assertClose(gy, ref.y, { rms: 1e-6, label: "many rows y" });
  assertClose(gdx, bref.dx, { rms: 3e-6, label: "many rows dx" });
  assertClose(gdg, bref.dgain.map((v, j) => v + dg0[j]), { rms: 3e-6, label: "accumulated dgain" });
});

for (const act of ["none", "sigmoid", "silu"] as GateActivation[]) {
  Deno.test(`normalized gated output matches float64 (act=${act})`, async () => {
    const gpu = await testGpu();
    let seed = 300;
    for (const [rows, d] of cases) {
      const o = randomArray(rows * d, seed++, -2, 2), u = randomArray(rows * d, seed++, -3, 3);
      const dy = randomArray(rows * d, seed++);
      const [to, tu, tdy] = [o, u, dy].map((a) => uploadTensor(gpu, a, [rows, d]));
      const { y, rstd } = await normGateForward(gpu, { o: to, u: tu }, { act, eps });
      const { dO, dU } = await normGateBackward(gpu, { o: to, u: tu, rstd, dy: tdy }, { act });
      const [gy, gdo, gdu] = await downloadTensors(gpu, [y, dO, dU]);
      const ref = normGateReference(o, u, { rows, d, eps, act });
      const bref = normGateBackwardReference(o, u, dy, { rows, d, eps, act });
      const label = `norm gate ${act} ${rows}x${d}`;
      assertClose(gy, ref.y, { rms: 1e-6, label: `${label} y` });
      if (gradOk(d)) assertClose(gdo, bref.dO, { rms: 3e-6, label: `${label} dO` });
      assertClose(gdu, bref.dU, { rms: 1e-6, label: `${label} dU` });
      for (const t of [to, tu, tdy, y, rstd, dO, dU]) t.release();
    }
  });
}

Deno.test("srmsnorm rejects mismatched shapes with a clear message", async () => {
  const gpu = await testGpu();
  const x = uploadTensor(gpu, randomArray(12, 1), [3, 4]);
  const g = uploadTensor(gpu, randomArray(3, 2), [3]);
  await srmsnormForward(gpu, x, { gain: g }).then(
    () => {
      throw new Error("expected a shape error");
    },
    (e) =>
      throws(() => {
        throw e;
      }, /gain has shape \[3\], expected \[4\]/),
  );
  x.release();
  g.release();
});
