/** Rank functions for tests/process_ranks_test.ts (run in separate processes). */
// A value import of mod.ts, as user rank modules have: mod.ts's graph must not reach the rank
// process's entry module (a cycle through it once deadlocked every such rank at import).
import { Communicator } from "../mod.ts";

/** Sums rank-valued data across ranks; returns it with values JSON cannot carry. */
export async function sumRanks(
  comm: Communicator,
  args: { n: number; scale: number },
): Promise<
  {
    rank: number;
    world: number;
    sp: number;
    sum: Float32Array;
    odd: Float32Array;
    env: string | null;
    isCommunicator: boolean;
  }
> {
  const x = Float32Array.from(
    { length: args.n },
    (_, i) => (comm.rank + 1) * args.scale * (i % 13),
  );
  return {
    rank: comm.rank,
    world: comm.world,
    sp: comm.sp,
    sum: await comm.allReduce(x),
    odd: Float32Array.of(NaN, -Infinity, comm.rank + 0.1, -0),
    env: Deno.env.get("PROCESS_RANKS_TEST") ?? null,
    isCommunicator: comm instanceof Communicator,
  };
}

/** Rank `bad` throws; the others wait on it (and must be stopped). */
export async function throwOnRank(comm: Communicator, args: { bad: number }): Promise<number> {
  if (comm.rank === args.bad) throw new Error(`boom (value ${comm.rank * 10})`);
  await comm.recv(args.bad, { step: 0, layer: 0, dir: 0 });
  return comm.rank;
}

/** Rank `bad` exits without a result; the others wait on it. */
export async function exitOnRank(comm: Communicator, args: { bad: number }): Promise<number> {
  if (comm.rank === args.bad) {
    console.error("leaving early");
    Deno.exit(7);
  }
  await comm.recv(args.bad, { step: 0, layer: 0, dir: 0 });
  return comm.rank;
}

/** Never returns. */
export function hang(): Promise<never> {
  return new Promise(() => setInterval(() => {}, 1000));
}
