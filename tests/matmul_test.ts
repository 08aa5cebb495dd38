import { downloadTensor, matmul, uploadTensor } from "../mod.ts";
import { matmulReference, randomArray } from "../lib/testing/reference.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import { DEFAULT_TILE, SMALL_TILE } from "../lib/ops/matmul.ts";
import { testGpu } from "./_gpu.ts";

const cases: [number, number, number][] = [
  [1, 1, 1],
  [7, 5, 3],
  [33, 17, 65],
  [64, 64, 64],
  [100, 63, 257],
  [128, 256, 48],
];

for (const transA of [false, true]) {
  for (const transB of [false, true]) {
    Deno.test(`matmul matches float64 (transA=${transA}, transB=${transB})`, async () => {
      const gpu = await testGpu();
      let seed = 1;
      for (const [m, n, k] of cases) {
        for (const tile of [SMALL_TILE, DEFAULT_TILE]) {
          const a = randomArray(m * k, seed++), b = randomArray(k * n, seed++);
          const ta = uploadTensor(gpu, a, transA ? [k, m] : [m, k]);
          const tb = uploadTensor(gpu, b, transB ? [n, k] : [k, n]);
          const c = await matmul(gpu, ta, tb, { transA, transB, alpha: 0.5, tile });
          const ref = matmulReference(a, b, { m, n, k, transA, transB, alpha: 0.5 });
          assertClose(await downloadTensor(gpu, c), ref, {
            rms: 1e-6,
            label: `matmul ${m}x${n}x${k} tile ${tile.bm}`,
          });
          for (const t of [ta, tb, c]) t.release();
        }
      }
    });
  }
}

Deno.test("matmul batched, broadcast and accumulate", async () => {
  const gpu = await testGpu();
  const [batch, m, n, k] = [3, 19, 36, 40];
  const a = randomArray(batch * m * k, 11),
    b = randomArray(k * n, 12),
    c0 = randomArray(batch * m * n, 13);
  const ta = uploadTensor(gpu, a, [batch, m, k]);
  const tb = uploadTensor(gpu, b, [k, n]);
  const tc = uploadTensor(gpu, c0, [batch, m, n]);
  await matmul(gpu, ta, tb, { out: tc, accumulate: true, alpha: 2 });
  const got = await downloadTensor(gpu, tc);
  const ref = new Float64Array(batch * m * n);
  for (let i = 0; i < batch; i++) {
    const r = matmulReference(a.subarray(i * m * k, (i + 1) * m * k), b, { m, n, k, alpha: 2 });
    for (let j = 0; j < m * n; j++) ref[i * m * n + j] = c0[i * m * n + j] + r[j];
  }
  assertClose(got, ref, { rms: 1e-6, label: "batched accumulate" });
});
