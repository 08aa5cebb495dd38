import { deepStrictEqual, rejects } from "node:assert/strict";
import { downloadTensors, uploadTensor } from "../mod.ts";
import { randomArray, seededRandom } from "../lib/testing/reference.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import {
  crossEntropyBackward,
  crossEntropyForward,
} from "../lib/ops/cross_entropy/cross_entropy.ts";
import { crossEntropyReference, IGNORE_INDEX } from "../lib/ops/cross_entropy/reference.ts";
import { testGpu } from "./_gpu.ts";

function targetsFor(rows: number, vocab: number, seed: number, ignoreEvery = 0): Int32Array {
  const rand = seededRandom(seed);
  return Int32Array.from(
    { length: rows },
    (_, i) => ignoreEvery > 0 && i % ignoreEvery === 1 ? IGNORE_INDEX : Math.floor(rand() * vocab),
  );
}

const cases: [number, number][] = [[1, 1], [3, 7], [5, 300], [17, 1001], [2, 50257]];

for (const [rows, vocab] of cases) {
  Deno.test(`cross-entropy matches float64 (rows=${rows}, vocab=${vocab})`, async () => {
    const gpu = await testGpu();
    // Large logits (±30) check the max shift; every third row ignored.
    const logits = randomArray(rows * vocab, rows + vocab, -30, 30);
    const targets = targetsFor(rows, vocab, vocab, 3);
    const tl = uploadTensor(gpu, logits, [rows, vocab]);
    const tt = uploadTensor(gpu, targets, [rows], "i32");
    const { losses, lse, stats } = await crossEntropyForward(gpu, { logits: tl, targets: tt });
    const saved = { logits: tl, targets: tt, lse, stats };
    const dl = await crossEntropyBackward(gpu, saved, { scale: 0.5 });
    const [gl, glse, gs, gdl] = await downloadTensors(gpu, [losses, lse, stats, dl]);
    const ref = crossEntropyReference(logits, targets, { rows, vocab, scale: 0.5 });
    const label = `CE ${rows}x${vocab}`;
    assertClose(gl, ref.losses, { rms: 1e-6, label: `${label} losses` });
    assertClose(glse, ref.lse, { rms: 1e-6, label: `${label} lse` });
    assertClose(gs, [ref.mean, ref.count, ref.mean * ref.count], {
      rms: 1e-6,
      label: `${label} stats`,
    });
    assertClose(gdl, ref.dlogits, { rms: 2e-6, label: `${label} dlogits` });
    // In place: the logits buffer becomes the gradient, bitwise equal to the out-of-place one.
    const inPlace = await crossEntropyBackward(gpu, saved, { scale: 0.5, inPlace: true });
    const [gip] = await downloadTensors(gpu, [inPlace]);
    deepStrictEqual(new Uint32Array(gip.buffer), new Uint32Array(gdl.buffer));
    for (const t of [tl, tt, losses, lse, stats, dl]) t.release();
  });
}

Deno.test("cross-entropy with u32 targets, a custom ignore index, and every row ignored", async () => {
  const gpu = await testGpu();
  const [rows, vocab] = [6, 11];
  const logits = randomArray(rows * vocab, 5, -3, 3);
  const targets = Uint32Array.from(targetsFor(rows, vocab, 6), (t, i) => (i === 2 ? 7 : t));
  const tl = uploadTensor(gpu, logits, [2, 3, vocab]);
  const tt = uploadTensor(gpu, targets, [2, 3], "u32");
  const fwd = await crossEntropyForward(gpu, { logits: tl, targets: tt }, { ignoreIndex: 7 });
  const dl = await crossEntropyBackward(gpu, { logits: tl, targets: tt, ...fwd }, {
    ignoreIndex: 7,
  });
  const ref = crossEntropyReference(logits, targets, { rows, vocab, ignoreIndex: 7 });
  // All rows ignored: mean 0, count 0, zero gradient (not NaN).
  const all = uploadTensor(gpu, new Int32Array(rows).fill(IGNORE_INDEX), [rows], "i32");
  const fwd0 = await crossEntropyForward(gpu, { logits: tl, targets: all });
  const dl0 = await crossEntropyBackward(gpu, { logits: tl, targets: all, ...fwd0 });
  const [gs, gdl, gs0, gdl0] = await downloadTensors(gpu, [fwd.stats, dl, fwd0.stats, dl0]);
  assertClose(gs, [ref.mean, ref.count, ref.mean * ref.count], { rms: 1e-6, label: "stats" });
  assertClose(gdl, ref.dlogits, { rms: 1e-6, label: "dlogits" });
  deepStrictEqual([...gs0], [0, 0, 0]);
  deepStrictEqual([...gdl0].every((v) => v === 0), true);
});

Deno.test("cross-entropy marks targets outside the vocabulary and rejects bad shapes", async () => {
  const gpu = await testGpu();
  const tl = uploadTensor(gpu, randomArray(8, 1), [2, 4]);
  const tt = uploadTensor(gpu, [1, 4], [2], "i32");
  const { losses, stats } = await crossEntropyForward(gpu, { logits: tl, targets: tt });
  const [gl, gs] = await downloadTensors(gpu, [losses, stats]);
  deepStrictEqual([Number.isNaN(gl[0]), Number.isNaN(gl[1]), Number.isNaN(gs[0])], [
    false,
    true,
    true,
  ]);
  const wrong = uploadTensor(gpu, [1, 2, 3], [3], "i32");
  await rejects(
    () => crossEntropyForward(gpu, { logits: tl, targets: wrong }),
    /targets must be 2 u32\/i32 ids \(one per row of logits \[2, 4\]\), got i32 \[3\]/,
  );
});
