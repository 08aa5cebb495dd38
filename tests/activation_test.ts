import { rejects } from "node:assert/strict";
import { downloadTensors, uploadTensor } from "../mod.ts";
import { randomArray } from "../lib/testing/reference.ts";
import { siluBackwardReference, siluReference } from "../lib/testing/reference.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import {
  featureMapBackward,
  featureMapForward,
  fill,
  gluBackward,
} from "../lib/ops/activation/activation.ts";
import {
  elu1BackwardReference,
  elu1Reference,
  gluBackwardReference,
} from "../lib/ops/activation/reference.ts";
import { testGpu } from "./_gpu.ts";

for (const n of [1, 255, 1001, 70001]) {
  Deno.test(`feature maps, GLU backward and fill match float64 (n=${n})`, async () => {
    const gpu = await testGpu();
    const x = randomArray(n, n, -5, 5), b = randomArray(n, n + 1, -2, 2);
    const dy = randomArray(n, n + 2);
    const [tx, tb, tdy] = [x, b, dy].map((a) => uploadTensor(gpu, a, [n]));
    const elu = await featureMapForward(gpu, tx, { map: "elu1" });
    const dElu = await featureMapBackward(gpu, { x: tx, dy: tdy }, { map: "elu1" });
    const silu = await featureMapForward(gpu, tx, { map: "silu" });
    const dSilu = await featureMapBackward(gpu, { x: tx, dy: tdy }, { map: "silu" });
    const { da, db } = await gluBackward(gpu, { a: tx, b: tb, dy: tdy });
    const filled = await fill(gpu, uploadTensor(gpu, new Float32Array(n).fill(NaN), [n]), {
      value: -0.25,
    });
    const outs = [elu, dElu, silu, dSilu, da, db, filled];
    const [ge, gde, gs, gds, gda, gdb, gf] = await downloadTensors(gpu, outs);
    const glu = gluBackwardReference(x, b, dy);
    assertClose(ge, elu1Reference(x), { rms: 1e-6, label: "elu+1" });
    assertClose(gde, elu1BackwardReference(x, dy), { rms: 1e-6, label: "elu+1 backward" });
    assertClose(gs, siluReference(x), { rms: 1e-6, label: "silu" });
    assertClose(gds, siluBackwardReference(x, dy), { rms: 1e-6, label: "silu backward" });
    assertClose(gda, glu.da, { rms: 1e-7, label: "glu da" });
    assertClose(gdb, glu.db, { rms: 1e-7, label: "glu db" });
    assertClose(gf, new Float64Array(n).fill(-0.25), { rms: 0, label: "fill" });
    for (const t of [tx, tb, tdy, ...outs]) t.release();
  });
}

Deno.test("activation ops reject unknown maps, shape mismatches and aliasing", async () => {
  const gpu = await testGpu();
  const a = uploadTensor(gpu, randomArray(6, 1), [2, 3]);
  const b = uploadTensor(gpu, randomArray(6, 2), [3, 2]);
  await rejects(
    // @ts-expect-error: an unknown map must be rejected at run time too
    () => featureMapForward(gpu, a, { map: "relu" }),
    /Unknown feature map "relu": must be "silu" or "elu1"/,
  );
  await rejects(
    () => gluBackward(gpu, { a, b, dy: a }),
    /gluBackward: b has shape \[3, 2\], expected \[2, 3\]/,
  );
  await rejects(
    () => featureMapForward(gpu, a, { map: "elu1", out: a }),
    /featureMapForward: out and x share one buffer/,
  );
  a.release();
  b.release();
});
