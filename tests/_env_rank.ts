/**
 * A rank process started with a launcher's environment (torchrun, Slurm, …): connects through
 * connectFromEnv, runs a ring all-reduce and a ZeRO-style reduce-scatter + all-gather of
 * rank-valued data, prints `RESULT <json>`.
 */
import { connectFromEnv } from "../lib/launch/connect.ts";
import { ringAllGather, ringAllReduce, ringReduceScatter } from "../lib/dist/ring.ts";

const { comm, launch } = await connectFromEnv({ timeoutMs: 30_000 });
const n = 1001;
const x = Float32Array.from({ length: n }, (_, i) => (comm.rank + 1) * (i % 17));
const sum = await ringAllReduce(comm, x);
const shard = await ringReduceScatter(comm, x);
const back = await ringAllGather(comm, shard, { total: n });
await comm.close();
console.log(
  `RESULT ${
    JSON.stringify({
      rank: comm.rank,
      world: comm.world,
      localRank: launch.localRank,
      sources: launch.sources,
      sum: Array.from(sum),
      back: Array.from(back),
    })
  }`,
);
Deno.exit(0);
