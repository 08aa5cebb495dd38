/**
 * One rank of bench/allreduce_bandwidth.ts, started by the launcher (RANK, WORLD_SIZE,
 * MASTER_ADDR/PORT, LASP_TOKEN). Per size: validates the ring all-reduce (every element of
 * the sum of rank-valued buffers is exact), then times raw point-to-point sends rank 0 → 1
 * (one message of the whole buffer, acknowledged), the same in both directions at once, the
 * ring all-reduce and the direct
 * all-reduce of the Communicator. The slowest rank's time counts. Rank 0 prints
 * `RESULT <json>`. Arguments: --sizes MiB,… --reps N --piece-bytes B
 */
import { connectFromEnv } from "../lib/launch/connect.ts";
import { DEFAULT_PIECE_BYTES, ringAllReduce } from "../lib/dist/ring.ts";
import { flag, median } from "./_timing.ts";

/** Timings of one size, ms (medians over the repetitions). */
export interface SizeResult {
  mib: number;
  p2pMs: number;
  /** Ranks 0 and 1 send each other the buffer at the same time. */
  duplexMs: number;
  ringMs: number;
  directMs: number;
}

const sizes = flag(Deno.args, "sizes", "1,4,16,64,256").split(",").map(Number);
const reps = Number(flag(Deno.args, "reps", "3"));
const pieceBytes = Number(flag(Deno.args, "piece-bytes", String(DEFAULT_PIECE_BYTES)));
const { comm } = await connectFromEnv({ timeoutMs: 300_000 });
const W = comm.world, rank = comm.rank;

/** Slowest rank's time of `op`, median over `reps` runs, each after a barrier. */
async function time(op: () => Promise<unknown>): Promise<number> {
  await op(); // warm-up
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    await comm.barrier();
    const t0 = performance.now();
    await op();
    const mine = Float32Array.of(performance.now() - t0);
    times.push(Math.max(...await comm.allGather(mine)));
  }
  return median(times);
}

const results: SizeResult[] = [];
let p2pSeq = 0;
for (const mib of sizes) {
  const n = (mib * (1 << 20)) / 4;
  const buf = new Float32Array(n).fill(rank + 1);
  const sum = await ringAllReduce(comm, buf, { pieceBytes });
  const want = (W * (W + 1)) / 2;
  for (let i = 0; i < n; i++) {
    if (sum[i] !== want) {
      throw new Error(
        `rank ${rank}: ring all-reduce of ${mib} MiB: element ${i} is ${sum[i]}, expected ${want}`,
      );
    }
  }
  const p2pMs = await time(async () => {
    const tag = { step: p2pSeq++, layer: 0, dir: 16 };
    if (rank === 0) {
      comm.send(1, tag, buf);
      await comm.recv(1, { ...tag, dir: 17 });
    } else if (rank === 1) {
      await comm.recv(0, tag);
      comm.send(0, { ...tag, dir: 17 }, new Float32Array(1));
    }
  });
  // both directions at once: what each link of a ring carries
  const duplexMs = await time(async () => {
    const tag = { step: p2pSeq++, layer: 0, dir: 18 };
    if (rank < 2) {
      comm.send(1 - rank, tag, buf);
      await comm.recv(1 - rank, tag);
    }
  });
  const ringMs = await time(() => ringAllReduce(comm, buf, { pieceBytes }));
  const directMs = await time(() => comm.allReduce(buf));
  results.push({ mib, p2pMs, duplexMs, ringMs, directMs });
}
await comm.close();
if (rank === 0) console.log(`RESULT ${JSON.stringify(results)}`);
Deno.exit(0);
