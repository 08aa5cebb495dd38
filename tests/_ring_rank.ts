/**
 * Rank function of the ring-collective tests (Workers and processes): every ring collective
 * on every group for odd sizes, on integer-valued and on random inputs.
 */
import type { Communicator } from "../lib/dist/communicator.ts";
import { ringAllGather, ringAllReduce, ringReduceScatter } from "../lib/dist/ring.ts";
import { shardRange } from "../lib/dist/groups.ts";
import type { GroupKind } from "../lib/dist/transport.ts";
import { randomArray } from "../lib/testing/reference.ts";

/** Empty, smaller than the group, odd, several pieces of 1 KiB, many pieces. */
export const RING_SIZES = [0, 1, 7, 13, 1001, 40_003];
export const RING_GROUPS: GroupKind[] = ["world", "sp", "dp"];
/** Small pieces so that odd chunks span several messages. */
export const PIECE_BYTES = 1024;

/** Input of `rank` in case `c`: integer values in [-64, 64] (exact sums) or random floats. */
export function ringInput(c: number, rank: number, n: number, integer: boolean): Float32Array {
  const x = randomArray(n, 104_729 * c + 131 * rank + 7, -4, 4);
  return integer ? x.map((v) => Math.round(v * 16) || 0) : x; // no -0: JSON drops its sign
}

/** Every ring collective, keyed `op/group/kind/n`. */
export async function ringCollectives(
  comm: Communicator,
): Promise<Record<string, Float32Array>> {
  const out: Record<string, Float32Array> = {};
  let c = 0;
  for (const group of RING_GROUPS) {
    const size = comm.groups[group].ranks.length, index = comm.groups[group].index;
    for (const integer of [true, false]) {
      for (const n of RING_SIZES) {
        c++;
        const x = ringInput(c, comm.rank, n, integer);
        const key = `${group}/${integer ? "int" : "float"}/${n}`;
        const options = { group, pieceBytes: PIECE_BYTES };
        out[`allReduce/${key}`] = await ringAllReduce(comm, x, options);
        out[`reduceScatter/${key}`] = await ringReduceScatter(comm, x, options);
        const [s, e] = shardRange(n, size, index);
        out[`allGather/${key}`] = await ringAllGather(comm, x.slice(s, e), {
          ...options,
          total: n,
        });
      }
    }
  }
  // default piece size; equal-length all-gather without `total`
  out["allReduce/default/40003"] = await ringAllReduce(
    comm,
    ringInput(999, comm.rank, 40_003, false),
  );
  out["allGather/equal/5"] = await ringAllGather(comm, ringInput(998, comm.rank, 5, false));
  // the ring works in the caller's buffer (no copy)
  out["allReduce/consume/40003"] = await ringAllReduce(
    comm,
    ringInput(999, comm.rank, 40_003, false),
    { consume: true },
  );
  const shardInput = ringInput(996, comm.rank, 1001, false);
  out["reduceScatter/consume/1001"] = await ringReduceScatter(comm, shardInput, {
    consume: true,
    pieceBytes: PIECE_BYTES,
  });
  // different operations issued in a different order on odd and even ranks
  const xi = ringInput(997, comm.rank, 101, true);
  const [s0, e0] = shardRange(101, comm.world, comm.rank);
  let rs: Promise<Float32Array>, ag: Promise<Float32Array>;
  if (comm.rank % 2) {
    ag = ringAllGather(comm, xi.slice(s0, e0), { total: 101 });
    rs = ringReduceScatter(comm, xi);
  } else {
    rs = ringReduceScatter(comm, xi);
    ag = ringAllGather(comm, xi.slice(s0, e0), { total: 101 });
  }
  out["interleaved/rs"] = await rs;
  out["interleaved/ag"] = await ag;
  return out;
}

/**
 * Rank 0 starts a ring all-reduce, then blocks its thread for `blockMs` (as the built-in
 * WebGPU does while it waits on the GPU). Returns the sum's first value, when this rank had
 * the sum, and when rank 0's block ended (Date.now(), one clock on one machine).
 */
export async function ringWhileBlocked(
  comm: Communicator,
  args: { blockMs: number },
): Promise<{ first: number; exact: boolean; doneAt: number; blockEnd: number; bytes: number }> {
  const n = 100_003;
  await comm.barrier();
  comm.takeCounters();
  const pending = ringAllReduce(comm, new Float32Array(n).fill(comm.rank + 1), {
    pieceBytes: 4096,
  });
  let blockEnd = 0;
  if (comm.rank === 0) {
    const until = Date.now() + args.blockMs;
    while (Date.now() < until) { /* busy: this thread runs nothing else meanwhile */ }
    blockEnd = Date.now();
  }
  const sum = await pending;
  const doneAt = Date.now();
  const want = (comm.world * (comm.world + 1)) / 2;
  return {
    first: sum[0],
    exact: sum.every((v) => v === want),
    doneAt,
    blockEnd,
    bytes: comm.takeCounters().bytesSent,
  };
}

/** Rank 1 fails; the others start a ring all-reduce that needs it (and must be aborted). */
export async function ringWithAFailingRank(comm: Communicator): Promise<Float32Array> {
  if (comm.rank === 1) throw new Error("deliberate failure");
  return await ringAllReduce(comm, new Float32Array(1000).fill(1), { timeoutMs: 60_000 });
}
