/** Expected results of the `collectives` rank function of tests/_dist_rank.ts. */
import { equal } from "node:assert/strict";
import { rankGroups, shardRange } from "../lib/dist/groups.ts";
import { GROUPS, input, SIZES } from "./_dist_rank.ts";

/** SP size per world size: W=4 has SP and DP groups of 2, W=2 DP only, W=3 SP only. */
export const SP: Record<number, number> = { 1: 1, 2: 1, 3: 3, 4: 2 };

export function assertExact(actual: Float32Array, expected: Float32Array, label: string): void {
  equal(actual.length, expected.length, `${label}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) {
      throw new Error(`${label}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

function groupSum(c: number, ranks: readonly number[], n: number): Float32Array {
  const acc = new Float64Array(n);
  for (const r of ranks) {
    const x = input(c, r, n);
    for (let i = 0; i < n; i++) acc[i] += x[i];
  }
  return Float32Array.from(acc);
}

/** Expected results and traffic counters of `collectives()` at `rank`. */
export function expected(rank: number, world: number, sp: number) {
  const groups = rankGroups(rank, world, sp);
  const out: Record<string, Float32Array> = {};
  let sent = 0, sentBytes = 0, received = 0, receivedBytes = 0;
  let c = 0;
  for (const kind of GROUPS) {
    const g = groups[kind], size = g.ranks.length, others = size - 1;
    for (const n of SIZES) {
      c++;
      const gathered = new Float32Array(size * n);
      g.ranks.forEach((r, i) => gathered.set(input(c, r, n), i * n));
      out[`allGather/${kind}/${n}`] = gathered;
      const sum = groupSum(c, g.ranks, n);
      out[`allReduce/${kind}/${n}`] = sum;
      const [s, e] = shardRange(n, size, g.index);
      out[`reduceScatter/${kind}/${n}`] = sum.slice(s, e);
      out[`broadcast/${kind}/${n}`] = input(c, g.ranks[size - 1], n);
      const shard = e - s;
      // all-gather, all-reduce (scatter + gather phases), reduce-scatter, barrier
      sent += others * 5;
      received += others * 5;
      sentBytes += 4 * (others * n + 2 * (n - shard) + others * shard);
      receivedBytes += 4 * (others * n + 2 * others * shard + (n - shard));
      if (g.index === size - 1) {
        sent += others;
        sentBytes += 4 * n * others;
      } else {
        received += 1;
        receivedBytes += 4 * n;
      }
    }
  }
  if (world > 1) {
    const prev = (rank + world - 1) % world;
    out["p2p/second"] = input(901, prev, 5);
    out["p2p/first"] = input(900, prev, 11);
    sent += 2;
    received += 2;
    sentBytes += 64;
    receivedBytes += 64;
  }
  out["counters"] = Float32Array.of(sent, sentBytes, received, receivedBytes);
  return out;
}

/** Checks one rank's results of `collectives()` bit for bit. */
export function checkCollectives(
  got: Record<string, Float32Array>,
  rank: number,
  world: number,
  sp: number,
): void {
  const want = expected(rank, world, sp);
  equal(Object.keys(got).sort().join(), Object.keys(want).sort().join(), `rank ${rank} keys`);
  for (const key of Object.keys(want)) assertExact(got[key], want[key], `rank ${rank} ${key}`);
}
