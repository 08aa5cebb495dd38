/**
 * spawnProcessRanks (lib/launch/process_ranks.ts): ranks as separate deno processes return
 * their results in rank order, bit-exact; a failing rank is named and the others are stopped.
 */
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { spawnProcessRanks } from "../lib/launch/process_ranks.ts";
import { decodeRankJson, encodeRankJson } from "../lib/launch/rank_json.ts";

const fns = new URL("./_process_rank_fns.ts", import.meta.url);

Deno.test("rank JSON keeps typed arrays bit-exact, NaN and views included", () => {
  const big = Float32Array.from({ length: 50_001 }, (_, i) => Math.sin(i) / 3).subarray(3, 40_000);
  const value = {
    f32: Float32Array.of(NaN, Infinity, -0, 1e-45, 3.4e38),
    f64: Float64Array.of(Math.PI, NaN),
    u32: Uint32Array.of(0, 2 ** 32 - 1),
    big,
    nested: [{ s: "x", n: null }],
  };
  const back = decodeRankJson(encodeRankJson(value)) as typeof value;
  ok(back.f32 instanceof Float32Array && back.u32 instanceof Uint32Array);
  const bytes = (a: Float32Array | Float64Array) =>
    new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  deepEqual(bytes(back.f32), bytes(value.f32));
  deepEqual(bytes(back.f64), bytes(value.f64));
  deepEqual(back.u32, value.u32);
  deepEqual(back.big, big);
  deepEqual(back.nested, value.nested);
});

for (const world of [2, 3]) {
  Deno.test(`${world} rank processes all-reduce exactly and return in rank order`, async () => {
    const n = 517, scale = 0.375;
    const results = await spawnProcessRanks<{
      rank: number;
      world: number;
      sp: number;
      sum: Float32Array;
      odd: Float32Array;
      env: string;
      isCommunicator: boolean;
    }>({
      world,
      module: fns,
      exportName: "sumRanks",
      args: { n, scale },
      env: { PROCESS_RANKS_TEST: `w${world}`, LASP_GPU: "deno" },
      timeoutMs: 30_000,
      deadlineMs: 90_000, // a rank stuck importing its module fails instead of hanging
    });
    const tri = (world * (world + 1)) / 2;
    const want = Float32Array.from({ length: n }, (_, i) => tri * scale * (i % 13));
    equal(results.length, world);
    results.forEach((r, rank) => {
      deepEqual([r.rank, r.world, r.sp, r.env], [rank, world, world, `w${world}`]);
      ok(r.isCommunicator, "the rank module imported mod.ts and got the same Communicator");
      deepEqual(r.sum, want);
      ok(Number.isNaN(r.odd[0]) && r.odd[1] === -Infinity && Object.is(r.odd[3], -0));
      equal(r.odd[2], Math.fround(rank + 0.1));
    });
  });
}

Deno.test("a rank that throws is named first and the waiting ranks are stopped", async () => {
  const t0 = performance.now();
  await rejects(
    () =>
      spawnProcessRanks({
        world: 3,
        module: fns,
        exportName: "throwOnRank",
        args: { bad: 1 },
        timeoutMs: 60_000,
      }),
    // The waiting ranks are either stopped or lose rank 1's connection first.
    /rank processes failed: Rank 1: boom \(value 10\)( \| Rank [02]: (stopped after rank 1 failed|connection to rank 1 [^|]*)){2}$/,
  );
  ok(performance.now() - t0 < 30_000, "the other ranks were not stopped");
});

Deno.test("a rank that exits without a result is named with its code and stderr", async () => {
  await rejects(
    () =>
      spawnProcessRanks({
        world: 3,
        module: fns,
        exportName: "exitOnRank",
        args: { bad: 2 },
        timeoutMs: 60_000,
      }),
    /failed: Rank 2: exited with code 7 without a result: leaving early/,
  );
});

Deno.test("a hung run is killed at the deadline; bad arguments are named", async () => {
  const err = await spawnProcessRanks({
    world: 2,
    module: fns,
    exportName: "hang",
    deadlineMs: 4_000,
  }).then(() => undefined, (e: Error) => e);
  ok(err);
  match(
    err.message,
    /^2 of 2 rank processes failed: Rank \d: killed after the deadline of 4000 ms/,
  );
  // Whichever rank reports first is named first; a rank stopped because of it comes after.
  await rejects(
    () => spawnProcessRanks({ world: 2, module: fns, exportName: "nothing" }),
    /failed: Rank \d: Rank module file:.*_process_rank_fns\.ts has no exported function "nothing"( \| Rank \d: (Rank module file:|stopped after rank \d failed)|$)/,
  );
  await rejects(
    () => spawnProcessRanks({ world: 0, module: fns }),
    /Invalid world size 0: must be a positive integer/,
  );
  await rejects(
    () => spawnProcessRanks({ world: 1, module: "relative.ts" }),
    /Invalid rank module "relative.ts": must be an absolute URL/,
  );
  await rejects(
    () => spawnProcessRanks({ world: 1, module: fns, args: "x".repeat(200_000) }),
    /Rank arguments too large: \d+ characters of JSON \(limit 120000\)/,
  );
});
