import { deepStrictEqual, throws } from "node:assert/strict";
import { BatchLoader } from "../lib/data/loader.ts";
import { type RankLayout, sliceMicroBatch, validationBatches } from "../lib/cli/data.ts";
import type { MicroBatch } from "../lib/train/types.ts";

const tokens = Uint32Array.from({ length: 5000 }, (_, i) => (i * 2654435761) >>> 24);

/** Reassembles [B, N] inputs and targets from the micro-batches of every rank. */
function assemble(parts: MicroBatch[][], sp: number, dp: number, n: number) {
  const per = parts[0][0].batch, b = per * dp, local = n / sp;
  const inputs = new Uint32Array(b * n), targets = new Uint32Array(b * n);
  for (let g = 0; g < dp; g++) {
    for (let t = 0; t < sp; t++) {
      const m = parts[g * sp + t][0];
      for (let r = 0; r < per; r++) {
        const row = (g * per + r) * n + t * local;
        inputs.set(m.inputs.subarray(r * local, (r + 1) * local), row);
        targets.set(m.targets.subarray(r * local, (r + 1) * local), row);
      }
    }
  }
  return { inputs, targets };
}

function layouts(sp: number, dp: number): RankLayout[] {
  return Array.from({ length: sp * dp }, (_, r) => ({
    sp,
    dp,
    spRank: r % sp,
    dpRank: Math.floor(r / sp),
  }));
}

Deno.test("rank data: every DP × SP layout sees the global batches of one rank, step by step", () => {
  const n = 24, batch = 4, seed = 5;
  const single = new BatchLoader(tokens, { batchSize: batch, seqLen: n, seed });
  const expected = Array.from(
    { length: 3 },
    () => sliceMicroBatch(single.next(), layouts(1, 1)[0]),
  );
  for (const [sp, dp] of [[2, 1], [4, 1], [1, 2], [2, 2], [3, 4]]) {
    const loaders = layouts(sp, dp).map((l) =>
      new BatchLoader(tokens, {
        batchSize: batch / dp,
        seqLen: n,
        seed,
        shard: { index: l.dpRank, count: dp },
      })
    );
    for (let s = 0; s < 3; s++) {
      const parts = layouts(sp, dp).map((l, r) => [sliceMicroBatch(loaders[r].next(), l)]);
      const got = assemble(parts, sp, dp, n);
      deepStrictEqual(got.inputs, expected[s].inputs, `sp ${sp} dp ${dp} step ${s}`);
      deepStrictEqual(got.targets, expected[s].targets);
      // targets are the inputs shifted by one token
      deepStrictEqual(got.inputs.subarray(1, n), got.targets.subarray(0, n - 1));
    }
  }
});

Deno.test("rank data: validation batches are the same windows for every layout", () => {
  const val = tokens.subarray(0, 700), n = 24;
  const ref = validationBatches(val, {
    batch: 4,
    seqLen: n,
    maxBatches: 3,
    layout: layouts(1, 1)[0],
  });
  deepStrictEqual(ref.map((m) => m.batch), [4, 4, 4]);
  for (const [sp, dp] of [[2, 1], [2, 2], [4, 2]]) {
    const per = layouts(sp, dp).map((l) =>
      validationBatches(val, { batch: 4, seqLen: n, maxBatches: 3, layout: l })
    );
    for (let k = 0; k < 3; k++) {
      const got = assemble(per.map((p) => [p[k]]), sp, dp, n);
      deepStrictEqual(got.inputs, ref[k].inputs);
    }
  }
  // 700 tokens hold 29 windows of 24 (+1): 7 full batches and one of 1, trimmed away for D=2.
  const all = validationBatches(val, {
    batch: 4,
    seqLen: n,
    maxBatches: 100,
    layout: layouts(1, 2)[0],
  });
  deepStrictEqual(all.map((m) => m.batch), [2, 2, 2, 2, 2, 2, 2]);
  throws(
    () =>
      validationBatches(val.subarray(0, 30), {
        batch: 4,
        seqLen: n,
        maxBatches: 1,
        layout: layouts(1, 2)[0],
      }),
    /validation split has 30 tokens: too few for 2 window\(s\) of 25/,
  );
});
