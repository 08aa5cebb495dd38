import { deepStrictEqual, rejects, throws } from "node:assert/strict";
import { downloadTensors, uploadTensor } from "../mod.ts";
import { randomArray, seededRandom } from "../lib/testing/reference.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import {
  buildScatterPlan,
  embeddingBackward,
  embeddingForward,
  embeddingScatterPlan,
} from "../lib/ops/embedding/embedding.ts";
import { embeddingBackwardReference, embeddingReference } from "../lib/ops/embedding/reference.ts";
import { testGpu } from "./_gpu.ts";

/** Skewed ids (like text: a few ids very frequent) from a seed. */
function skewedIds(n: number, vocab: number, seed: number): Uint32Array {
  const rand = seededRandom(seed);
  return Uint32Array.from({ length: n }, () => Math.floor(vocab * rand() ** 3));
}

const cases: [number, number, number][] = [[1, 1, 1], [37, 5, 100], [1000, 300, 257], [
  50,
  513,
  64,
]];

for (const [vocab, d, n] of cases) {
  Deno.test(`embedding gather and scatter-add match float64 (V=${vocab}, d=${d}, n=${n})`, async () => {
    const gpu = await testGpu();
    const w = randomArray(vocab * d, vocab + d), dy = randomArray(n * d, n);
    const ids = skewedIds(n, vocab, d);
    const tw = uploadTensor(gpu, w, [vocab, d]), tdy = uploadTensor(gpu, dy, [n, d]);
    const tids = uploadTensor(gpu, ids, [n], "u32");
    const out = await embeddingForward(gpu, { weight: tw, ids: tids });
    const plan = embeddingScatterPlan(gpu, ids, { vocab });
    const dw = await embeddingBackward(gpu, { dy: tdy, plan });
    const dw0 = randomArray(vocab * d, 7);
    const acc = uploadTensor(gpu, dw0, [vocab, d]);
    await embeddingBackward(gpu, { dy: tdy, plan }, { dweight: acc, accumulate: true });
    const [gout, gdw, gacc] = await downloadTensors(gpu, [out, dw, acc]);
    assertClose(gout, embeddingReference(w, ids, d), { rms: 0, label: "gather" });
    const ref = embeddingBackwardReference(dy, ids, { vocab, d });
    assertClose(gdw, ref, { rms: 1e-6, label: "scatter-add" });
    assertClose(gacc, ref.map((v, i) => v + dw0[i]), { rms: 1e-6, label: "scatter-add +=" });
    // The plan fixes the summation order: a second run is bitwise identical.
    const again = await embeddingBackward(gpu, { dy: tdy, plan });
    const [gagain] = await downloadTensors(gpu, [again]);
    deepStrictEqual(new Uint32Array(gagain.buffer), new Uint32Array(gdw.buffer));
    for (const t of [tw, tdy, tids, out, plan.tensor, dw, acc, again]) t.release();
  });
}

Deno.test("scatter plan groups positions by id in order", () => {
  const ids = [3, 1, 3, 0, 3, 1];
  // order: id 0 → [3]; id 1 → [1, 5]; id 3 → [0, 2, 4]; starts [0, 1, 3, 6]; ids [0, 1, 3]
  deepStrictEqual(
    [...buildScatterPlan(ids, 4)],
    [3, 1, 5, 0, 2, 4, 0, 1, 3, 6, 0, 1, 3],
  );
  throws(
    () => buildScatterPlan([0, 4], 4),
    /Token id 4 at position 1 is outside the vocabulary \[0, 4\)/,
  );
});

Deno.test("embedding gather marks ids outside the vocabulary with NaN", async () => {
  const gpu = await testGpu();
  const tw = uploadTensor(gpu, randomArray(6, 1), [3, 2]);
  const tids = uploadTensor(gpu, [0, 3], [2], "u32");
  const out = await embeddingForward(gpu, { weight: tw, ids: tids });
  const [got] = await downloadTensors(gpu, [out]);
  deepStrictEqual([...got].map(Number.isNaN), [false, false, true, true]);
  await rejects(
    () => embeddingForward(gpu, { weight: tw, ids: tw }),
    /embeddingForward: ids must be u32, got f32/,
  );
  for (const t of [tw, tids, out]) t.release();
});

Deno.test("embedding scatter-add with more distinct ids than one grid dimension holds", async () => {
  const gpu = await testGpu();
  const n = gpu.limits.maxComputeWorkgroupsPerDimension + 5, vocab = n + 3, d = 2;
  const ids = Uint32Array.from({ length: n }, (_, t) => (t * 7919) % vocab); // all distinct
  const dy = randomArray(n * d, 9);
  const tdy = uploadTensor(gpu, dy, [n, d]);
  const plan = embeddingScatterPlan(gpu, ids, { vocab });
  const dw = await embeddingBackward(gpu, { dy: tdy, plan });
  const [got] = await downloadTensors(gpu, [dw]);
  const ref = embeddingBackwardReference(dy, ids, { vocab, d });
  assertClose(got, ref, { rms: 0, label: "scatter-add, distinct ids" });
  for (const t of [tdy, plan.tensor, dw]) t.release();
});
