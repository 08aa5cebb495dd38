/**
 * Collectives and point-to-point messages on W ∈ {1, 2, 3, 4} ranks over both transports,
 * for odd sizes and every group kind, checked bit for bit against sums computed here
 * (float64 in group order, rounded once: what the communicator promises).
 */
import { deepEqual, equal, throws } from "node:assert/strict";
import { rankGroups, shardRange } from "../lib/dist/groups.ts";
import { Communicator } from "../lib/dist/communicator.ts";
import { spawnWorkerRanks } from "../lib/dist/worker_ranks.ts";
import { checkCollectives, SP } from "./_dist_expected.ts";

for (const transport of ["worker", "websocket"] as const) {
  for (const world of [1, 2, 3, 4]) {
    Deno.test(`collectives exact: ${transport} transport, W=${world}`, async () => {
      const sp = SP[world];
      const results = await spawnWorkerRanks<Record<string, Float32Array>>({
        world,
        sp,
        module: new URL("./_dist_rank.ts", import.meta.url),
        exportName: "collectives",
        transport,
        timeoutMs: 30_000,
        // small frames so that odd payloads span several parts
        websocket: { partBytes: 4096, connectTimeoutMs: 30_000 },
      });
      equal(results.length, world);
      results.forEach((got, rank) => checkCollectives(got, rank, world, sp));
    });
  }
}

for (const transport of ["worker", "websocket"] as const) {
  Deno.test(`a sender whose thread then blocks still delivers at once (${transport})`, async () => {
    const [latency] = await spawnWorkerRanks<number>({
      world: 2,
      module: new URL("./_dist_rank.ts", import.meta.url),
      exportName: "blockedSender",
      args: { blockMs: 1500 },
      transport,
    });
    // without a separate I/O thread the message would leave after the 1500 ms block
    if (!(latency < 750)) throw new Error(`the message took ${latency} ms`);
  });
}

Deno.test("a silent peer: the receive times out naming the rank (worker transport)", async () => {
  const start = performance.now();
  let message = "";
  try {
    await spawnWorkerRanks({
      world: 2,
      module: new URL("./_dist_rank.ts", import.meta.url),
      exportName: "silentPeer",
      args: { timeoutMs: 300 },
    });
  } catch (e) {
    message = (e as Error).message;
  }
  const pattern =
    /Rank 0 timed out after 300 ms waiting for rank 1 \(worker rank 1 of this process\): step 3 layer 4 forward/;
  if (!pattern.test(message)) throw new Error(`unexpected error: "${message}"`);
  if (performance.now() - start > 20_000) throw new Error("the timeout did not fire in time");
});

Deno.test("a failing rank aborts the others at once and is named", async () => {
  const start = performance.now();
  let message = "";
  try {
    await spawnWorkerRanks({
      world: 3,
      module: new URL("./_dist_rank.ts", import.meta.url),
      exportName: "failingPeer",
    });
  } catch (e) {
    message = (e as Error).message;
  }
  if (!/^3 of 3 ranks failed: Rank 1: deliberate failure$/.test(message)) {
    throw new Error(`unexpected error: "${message}"`);
  }
  // ranks 0 and 2 wait with a 60 s timeout: only the abort can end them this early
  if (performance.now() - start > 20_000) throw new Error("the other ranks were not aborted");
});

Deno.test("groups: contiguous SP groups, strided DP groups; bad sizes rejected", () => {
  // W = 6, SP = 3: SP groups {0,1,2} {3,4,5}; DP groups {0,3} {1,4} {2,5}
  const g = rankGroups(4, 6, 3);
  deepEqual(g.sp, { kind: "sp", ranks: [3, 4, 5], index: 1 });
  deepEqual(g.dp, { kind: "dp", ranks: [1, 4], index: 1 });
  deepEqual(g.world.ranks, [0, 1, 2, 3, 4, 5]);
  throws(() => rankGroups(0, 4, 3), /Cannot form sequence-parallel groups of 3 over 4 ranks/);
  throws(() => rankGroups(4, 4, 2), /Invalid rank 4/);
  deepEqual([0, 1, 2].map((i) => shardRange(7, 3, i)), [[0, 3], [3, 5], [5, 7]]);
  const solo = Communicator.solo();
  equal(solo.sp, 1);
  equal(solo.spRank, 0);
});
