/**
 * Ring all-reduce, reduce-scatter and all-gather on W ∈ {2, 3, 4} over Worker and WebSocket
 * transports and over separate processes, for odd sizes and every group kind: exact on
 * integer-valued inputs; on random inputs bit for bit equal to the documented summation order
 * (ring order from the chunk owner's right neighbour, float32 per hop), identical on every
 * rank, and within 1e-6 of float64; different operations may be issued in a different order
 * on different ranks.
 */
import { equal, ok, rejects } from "node:assert/strict";
import { rankGroups, shardRange } from "../lib/dist/groups.ts";
import { spawnWorkerRanks } from "../lib/dist/worker_ranks.ts";
import { Communicator } from "../lib/dist/communicator.ts";
import { ringAllGather, ringAllReduce, ringReduceScatter } from "../lib/dist/ring.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import { assertExact, SP } from "./_dist_expected.ts";
import { RING_GROUPS, RING_SIZES, ringInput, type ringWhileBlocked } from "./_ring_rank.ts";
import { spawnProcessRanks } from "./_process_ranks.ts";

/** The ring's documented sum: chunk c summed from member c+1 around to c, rounding per hop. */
function ringSum(inputs: Float32Array[], n: number): Float32Array {
  const g = inputs.length, out = new Float32Array(n);
  for (let c = 0; c < g; c++) {
    const [s, e] = shardRange(n, g, c);
    for (let i = s; i < e; i++) {
      let acc = Math.fround(inputs[(c + 1) % g][i]);
      for (let k = 2; k <= g; k++) acc = Math.fround(acc + inputs[(c + k) % g][i]);
      out[i] = acc;
    }
  }
  return out;
}

function float64Sum(inputs: Float32Array[], n: number): Float64Array {
  const out = new Float64Array(n);
  for (const x of inputs) for (let i = 0; i < n; i++) out[i] += x[i];
  return out;
}

function check(results: Record<string, Float32Array>[], world: number, sp: number): void {
  results.forEach((got, rank) => {
    const groups = rankGroups(rank, world, sp);
    let c = 0;
    for (const kind of RING_GROUPS) {
      const g = groups[kind];
      for (const integer of [true, false]) {
        for (const n of RING_SIZES) {
          c++;
          const inputs = g.ranks.map((r) => ringInput(c, r, n, integer));
          const key = `${kind}/${integer ? "int" : "float"}/${n}`;
          const sum = ringSum(inputs, n);
          const exact = float64Sum(inputs, n);
          if (integer) assertExact(sum, Float32Array.from(exact), `reference ${key}`);
          else if (n > 0) assertClose(sum, exact, { rms: 1e-6, max: 1e-5, label: key });
          assertExact(got[`allReduce/${key}`], sum, `rank ${rank} allReduce/${key}`);
          const [s, e] = shardRange(n, g.ranks.length, g.index);
          assertExact(got[`reduceScatter/${key}`], sum.slice(s, e), `rank ${rank} rs/${key}`);
          const gathered = new Float32Array(n);
          g.ranks.forEach((r, i) => {
            const [a, b] = shardRange(n, g.ranks.length, i);
            gathered.set(ringInput(c, r, n, integer).subarray(a, b), a);
          });
          assertExact(got[`allGather/${key}`], gathered, `rank ${rank} allGather/${key}`);
        }
      }
    }
    const all = Array.from({ length: world }, (_, r) => r);
    assertExact(
      got["allReduce/default/40003"],
      ringSum(all.map((r) => ringInput(999, r, 40_003, false)), 40_003),
      `rank ${rank} default pieces`,
    );
    assertExact(
      got["allReduce/consume/40003"],
      got["allReduce/default/40003"],
      `rank ${rank} consuming all-reduce`,
    );
    const [cs, ce] = shardRange(1001, world, rank);
    assertExact(
      got["reduceScatter/consume/1001"],
      ringSum(all.map((r) => ringInput(996, r, 1001, false)), 1001).slice(cs, ce),
      `rank ${rank} consuming reduce-scatter`,
    );
    const equalParts = new Float32Array(5 * world);
    all.forEach((r) => equalParts.set(ringInput(998, r, 5, false), 5 * r));
    assertExact(got["allGather/equal/5"], equalParts, `rank ${rank} equal all-gather`);
    const xs = all.map((r) => ringInput(997, r, 101, true));
    const [s0, e0] = shardRange(101, world, rank);
    assertExact(
      got["interleaved/rs"],
      ringSum(xs, 101).slice(s0, e0),
      `rank ${rank} interleaved rs`,
    );
    const parts = new Float32Array(101);
    all.forEach((r, i) => {
      const [a, b] = shardRange(101, world, i);
      parts.set(xs[r].subarray(a, b), a);
    });
    assertExact(got["interleaved/ag"], parts, `rank ${rank} interleaved ag`);
  });
}

for (const transport of ["worker", "websocket"] as const) {
  for (const world of [2, 3, 4]) {
    Deno.test(`ring collectives exact: ${transport} transport, W=${world}`, async () => {
      const sp = SP[world];
      const results = await spawnWorkerRanks<Record<string, Float32Array>>({
        world,
        sp,
        module: new URL("./_ring_rank.ts", import.meta.url),
        exportName: "ringCollectives",
        transport,
        timeoutMs: 30_000,
        websocket: { partBytes: 4096, connectTimeoutMs: 30_000 },
      });
      equal(results.length, world);
      check(results, world, sp);
    });
  }
}

Deno.test("ring collectives across 3 separate deno processes are exact", async () => {
  const results = await spawnProcessRanks<Record<string, Float32Array>>({
    world: 3,
    sp: 3,
    module: new URL("./_ring_rank.ts", import.meta.url),
    exportName: "ringCollectives",
    timeoutMs: 60_000,
  });
  check(results, 3, 3);
});

// Rings run off the rank threads: ranks 1 and 2 get the sum before rank 0's thread, blocked
// right after starting it (as a GPU wait blocks it), runs again.
for (const ranksAs of ["processes", "worker", "websocket"] as const) {
  Deno.test(`ring all-reduce finishes while rank 0's thread is blocked: ${ranksAs} ranks`, async () => {
    const world = 3, n = 100_003;
    const options = {
      world,
      module: new URL("./_ring_rank.ts", import.meta.url),
      exportName: "ringWhileBlocked",
      args: { blockMs: 4000 },
      timeoutMs: 60_000,
    };
    type Result = Awaited<ReturnType<typeof ringWhileBlocked>>;
    const results = ranksAs === "processes"
      ? await spawnProcessRanks<Result>(options)
      : await spawnWorkerRanks<Result>({ ...options, transport: ranksAs });
    const blockEnd = results[0].blockEnd;
    results.forEach((r, rank) => {
      ok(r.exact, `rank ${rank}: sum ${r.first}, expected 6 everywhere`);
      // the traffic counted in the communicator: reduce-scatter sends chunks rank−1 and
      // rank−2, all-gather chunks rank and rank−1
      const chunk = (c: number) => {
        const [s, e] = shardRange(n, world, (c + world) % world);
        return 4 * (e - s);
      };
      equal(r.bytes, chunk(rank - 1) + chunk(rank - 2) + chunk(rank) + chunk(rank - 1));
      if (rank > 0) ok(r.doneAt < blockEnd, `rank ${rank} waited for rank 0's thread`);
    });
  });
}

for (const transport of ["worker", "websocket"] as const) {
  Deno.test(`a failing rank aborts rings running off the rank threads: ${transport}`, async () => {
    const start = performance.now();
    await rejects(
      spawnWorkerRanks({
        world: 3,
        module: new URL("./_ring_rank.ts", import.meta.url),
        exportName: "ringWithAFailingRank",
        transport,
      }),
      // the others are aborted, or see rank 1's connection close first
      /^Error: 3 of 3 ranks failed: Rank 1: deliberate failure( \| Rank [02]: connection to rank 1 [^|]*)*$/,
    );
    // the others' ring receives wait up to 60 s: only the abort can end them this early
    ok(performance.now() - start < 20_000, "the rings were not aborted");
  });
}

Deno.test("ring collectives: one rank is a copy; bad arguments are named", async () => {
  const solo = Communicator.solo();
  const x = Float32Array.of(1, 2, 3);
  assertExact(await ringAllReduce(solo, x), x, "solo all-reduce");
  assertExact(await ringReduceScatter(solo, x), x, "solo reduce-scatter");
  assertExact(await ringAllGather(solo, x, { total: 3 }), x, "solo all-gather");
  await rejects(() => ringAllReduce(solo, x, { pieceBytes: 6 }), /Invalid pieceBytes 6/);
  await rejects(() => ringAllGather(solo, x, { total: 2.5 }), /invalid total 2.5/);
  await rejects(
    () => ringAllGather(solo, x, { total: 4 }),
    /passed 3 values, but member 0 of 1 owns 4/,
  );
});
