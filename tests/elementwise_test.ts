import { rejects } from "node:assert/strict";
import { downloadTensors, uploadTensor } from "../mod.ts";
import { add, mul, scale, siluBackward, siluForward } from "../lib/ops/elementwise.ts";
import { randomArray, siluBackwardReference, siluReference } from "../lib/testing/reference.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import { linearWorkgroups } from "../lib/gpu/commands.ts";
import { testGpu } from "./_gpu.ts";

for (const n of [1, 255, 257, 1000, 70001]) {
  Deno.test(`elementwise ops match float64 (n=${n})`, async () => {
    const gpu = await testGpu();
    const x = randomArray(n, n, -6, 6), y = randomArray(n, n + 1, -2, 2);
    const tx = uploadTensor(gpu, x, [n]), ty = uploadTensor(gpu, y, [n]);
    const outs = [
      await add(gpu, tx, ty, { alpha: 0.5, beta: -2 }),
      await mul(gpu, tx, ty),
      await scale(gpu, tx, { alpha: 3 }),
      await siluForward(gpu, tx),
      await siluBackward(gpu, tx, ty),
    ];
    const [a, m, s, f, b] = await downloadTensors(gpu, outs);
    assertClose(a, Float64Array.from(x, (v, i) => 0.5 * v - 2 * y[i]), { rms: 1e-7, label: "add" });
    assertClose(m, Float64Array.from(x, (v, i) => v * y[i]), { rms: 1e-7, label: "mul" });
    assertClose(s, Float64Array.from(x, (v) => 3 * v), { rms: 1e-7, label: "scale" });
    assertClose(f, siluReference(x), { rms: 1e-6, label: "silu" });
    assertClose(b, siluBackwardReference(x, y), { rms: 1e-6, label: "silu backward" });
    for (const t of [tx, ty, ...outs]) t.release();
  });
}

Deno.test("elementwise rejects mismatched sizes and aliasing", async () => {
  const gpu = await testGpu();
  const a = uploadTensor(gpu, randomArray(5, 1), [5]),
    b = uploadTensor(gpu, randomArray(6, 2), [6]);
  await rejects(() => add(gpu, a, b), /add: sizes differ, \[5\] vs \[6\]/);
  await rejects(() => siluForward(gpu, a, { out: a }), /silu_fwd: out and x share one buffer/);
  const c = uploadTensor(gpu, randomArray(5, 3), [5]);
  await rejects(() => add(gpu, c, a, { out: a }), /add: out and y share one buffer/);
  c.release();
  a.release();
  b.release();
});

Deno.test("linearWorkgroups covers n within the per-dimension limit", () => {
  for (const n of [1, 256, 257, 65535 * 256, 65535 * 256 + 1, 1e9]) {
    const [x, y] = linearWorkgroups(n, 256);
    if (x > 65535 || y > 65535 || x * y * 256 < n) throw new Error(`bad grid ${x}×${y} for ${n}`);
  }
});
