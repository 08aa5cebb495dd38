/**
 * Rank processes started with torchrun-style and Slurm-style environment variables find each
 * other through connectFromEnv and reduce exactly.
 */
import { deepEqual, equal } from "node:assert/strict";
import { freePort } from "../lib/dist/worker_ranks.ts";

const script = new URL("./_env_rank.ts", import.meta.url).pathname;
/** This process's environment without any launcher's variables (the test may run under one). */
const baseEnv = Object.fromEntries(
  Object.entries(Deno.env.toObject()).filter(([k]) =>
    !/^(RANK|WORLD_SIZE|LOCAL_RANK|MASTER_ADDR|MASTER_PORT|SLURM_.*|OMPI_.*|LASP_.*)$/.test(k)
  ),
);

async function runRanks(envOf: (rank: number) => Record<string, string>, world: number) {
  const outputs = await Promise.all(
    Array.from({ length: world }, (_, rank) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", script],
        env: { ...baseEnv, ...envOf(rank) },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output()),
  );
  return outputs.map((out, rank) => {
    const line = new TextDecoder().decode(out.stdout).split("\n").find((l) =>
      l.startsWith("RESULT ")
    );
    if (!out.success || !line) {
      throw new Error(
        `rank ${rank} failed (exit ${out.code}): ${
          new TextDecoder().decode(out.stderr).slice(-400)
        }`,
      );
    }
    return JSON.parse(line.slice(7));
  });
}

function check(
  results: { rank: number; world: number; sum: number[]; back: number[] }[],
  world: number,
) {
  const n = 1001, tri = (world * (world + 1)) / 2;
  const want = Array.from({ length: n }, (_, i) => tri * (i % 17));
  results.forEach((r, rank) => {
    equal(r.rank, rank);
    equal(r.world, world);
    deepEqual(r.sum, want);
    deepEqual(r.back, want);
  });
}

Deno.test("ranks started with torchrun variables (RANK, WORLD_SIZE, MASTER_*) connect", async () => {
  const port = String(freePort()), world = 3;
  const results = await runRanks((rank) => ({
    RANK: String(rank),
    WORLD_SIZE: String(world),
    LOCAL_RANK: String(rank),
    MASTER_ADDR: "127.0.0.1",
    MASTER_PORT: port,
  }), world);
  check(results, world);
  deepEqual(results.map((r) => r.sources), [["torchrun"], ["torchrun"], ["torchrun"]]);
});

Deno.test("ranks started with Slurm variables (SLURM_PROCID, SLURM_NTASKS, node list) connect", async () => {
  const port = String(freePort()), world = 2;
  const results = await runRanks((rank) => ({
    SLURM_PROCID: String(rank),
    SLURM_NTASKS: String(world),
    SLURM_LOCALID: String(rank),
    SLURM_NODELIST: "127.0.0.1",
    MASTER_PORT: port,
  }), world);
  check(results, world);
  deepEqual(results.map((r) => [r.sources, r.localRank]), [[["slurm"], 0], [["slurm"], 1]]);
});
