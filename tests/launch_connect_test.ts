/**
 * Rank processes started with torchrun-style and Slurm-style environment variables find each
 * other through connectFromEnv and reduce exactly.
 */
import { deepEqual, equal } from "node:assert/strict";
import { runWithLauncherVars } from "./_launch_env.ts";

const script = new URL("./_env_rank.ts", import.meta.url).pathname;

interface EnvRankResult {
  rank: number;
  world: number;
  localRank: number;
  sources: string[];
  sum: number[];
  back: number[];
}

function check(results: EnvRankResult[], world: number): void {
  const n = 1001, tri = (world * (world + 1)) / 2;
  const want = Array.from({ length: n }, (_, i) => tri * (i % 17));
  results.forEach((r, rank) => {
    equal(r.rank, rank);
    equal(r.world, world);
    equal(r.localRank, rank);
    deepEqual(r.sum, want);
    deepEqual(r.back, want);
  });
}

Deno.test("ranks started with torchrun variables (RANK, WORLD_SIZE, MASTER_*) connect", async () => {
  const results = await runWithLauncherVars<EnvRankResult>("torchrun", 3, script);
  check(results, 3);
  deepEqual(results.map((r) => r.sources), [["torchrun"], ["torchrun"], ["torchrun"]]);
});

Deno.test("ranks started with Slurm variables (SLURM_PROCID, SLURM_NTASKS, node list) connect", async () => {
  const results = await runWithLauncherVars<EnvRankResult>("slurm", 2, script);
  check(results, 2);
  deepEqual(results.map((r) => r.sources), [["slurm"], ["slurm"]]);
});
