/**
 * Rank functions for the distributed tests (run by spawnWorkerRanks and by
 * tests/_process_rank.ts): collectives on seeded inputs, and misbehaving ranks.
 */
import type { Communicator } from "../lib/dist/communicator.ts";
import type { GroupKind } from "../lib/dist/transport.ts";
import { randomArray } from "../lib/testing/reference.ts";

/** Sizes of the collective cases: empty, odd, not divisible by any group size, multi-frame. */
export const SIZES = [0, 1, 7, 13, 1001, 40_003];
export const GROUPS: GroupKind[] = ["world", "sp", "dp"];

/** Input of `rank` in case `c`. */
export function input(c: number, rank: number, n: number): Float32Array {
  return randomArray(n, 7919 * c + 31 * rank + 1, -4, 4);
}

/** Every collective on every group and size; point-to-point with tags received out of order. */
export async function collectives(comm: Communicator): Promise<Record<string, Float32Array>> {
  const out: Record<string, Float32Array> = {};
  let c = 0;
  for (const group of GROUPS) {
    for (const n of SIZES) {
      c++;
      const x = input(c, comm.rank, n);
      out[`allGather/${group}/${n}`] = await comm.allGather(x, { group });
      out[`allReduce/${group}/${n}`] = await comm.allReduce(x, { group });
      out[`reduceScatter/${group}/${n}`] = await comm.reduceScatter(x, { group });
      const root = comm.groups[group].ranks.length - 1;
      out[`broadcast/${group}/${n}`] = await comm.broadcast(
        comm.groups[group].index === root ? x : undefined,
        { group, root },
      );
      await comm.barrier({ group });
    }
  }
  // ring of point-to-point messages; two tags per hop, received in the opposite order
  const next = (comm.rank + 1) % comm.world, prev = (comm.rank + comm.world - 1) % comm.world;
  if (comm.world > 1) {
    comm.send(next, { step: 5, layer: 1, dir: 0 }, input(900, comm.rank, 11));
    const own = input(901, comm.rank, 5);
    comm.send(next, { step: 5, layer: 2, dir: 1 }, own, { transfer: true });
    out["p2p/second"] = await comm.recv(prev, { step: 5, layer: 2, dir: 1 });
    out["p2p/first"] = await comm.recv(prev, { step: 5, layer: 1, dir: 0 });
  }
  const counters = comm.takeCounters();
  out["counters"] = Float32Array.of(
    counters.messagesSent,
    counters.bytesSent,
    counters.messagesReceived,
    counters.bytesReceived,
  );
  return out;
}

/** Rank 0 waits for a message rank 1 never sends (rank 1 returns at once). */
export async function silentPeer(comm: Communicator, args: { timeoutMs: number }): Promise<string> {
  if (comm.rank === 0) {
    await comm.recv(1, { step: 3, layer: 4, dir: 0 }, { timeoutMs: args.timeoutMs });
  }
  return "done";
}

/** Rank 1 throws; rank 0 waits on it with a long timeout and must be aborted early. */
export async function failingPeer(comm: Communicator): Promise<string> {
  if (comm.rank === 1) throw new Error("deliberate failure");
  await comm.recv(1, { step: 0, layer: 0, dir: 0 }, { timeoutMs: 60_000 });
  return "unreachable";
}

/** Milliseconds modulo which the blocked-sender test sends its clock (integers < 2^24). */
const CLOCK_WRAP = 1_000_000;

/**
 * Rank 1 sends, then blocks its thread for `blockMs` (as the built-in WebGPU does while it
 * waits for the GPU); rank 0 reports how long after the send the message arrived.
 */
export async function blockedSender(
  comm: Communicator,
  args: { blockMs: number },
): Promise<number> {
  const tag = { step: 1, layer: 0, dir: 0 };
  if (comm.rank === 1) {
    comm.send(0, tag, Float32Array.of(Date.now() % CLOCK_WRAP)); // exact in float32
    const until = Date.now() + args.blockMs;
    while (Date.now() < until) { /* blocked thread: no event loop */ }
    await comm.barrier();
    return 0;
  }
  const [sentAt] = await comm.recv(1, tag);
  const latency = (Date.now() % CLOCK_WRAP - sentAt + CLOCK_WRAP) % CLOCK_WRAP;
  await comm.barrier();
  return latency;
}
