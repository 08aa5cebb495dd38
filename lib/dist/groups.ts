/**
 * Data-sequence hybrid layout (LASP.md §4): W = DP × SP ranks; sequence-parallel groups are
 * contiguous ranks [i·SP, (i+1)·SP), data-parallel groups are strided {j, j+SP, …}.
 * @module
 */
import type { GroupKind } from "./transport.ts";

/** A set of ranks that run collectives together, as seen from one member. */
export interface Group {
  /** Which of the rank's groups this is. */
  readonly kind: GroupKind;
  /** Member ranks in group order. */
  readonly ranks: readonly number[];
  /** This rank's position in `ranks`. */
  readonly index: number;
}

/** The three groups a rank belongs to. */
export interface RankGroups {
  /** All ranks. */
  world: Group;
  /** Ranks sharing one sequence; `index` is the sequence rank t. */
  sp: Group;
  /** Ranks holding the same sequence slice of different batches. */
  dp: Group;
}

/** Groups of `rank` in a world of `world` ranks with sequence-parallel size `sp`. */
export function rankGroups(rank: number, world: number, sp: number): RankGroups {
  if (!Number.isInteger(world) || world < 1) {
    throw new Error(`Invalid world size ${world}: must be a positive integer`);
  }
  if (!Number.isInteger(rank) || rank < 0 || rank >= world) {
    throw new Error(`Invalid rank ${rank}: must be an integer in [0, ${world})`);
  }
  if (!Number.isInteger(sp) || sp < 1 || world % sp !== 0) {
    throw new Error(
      `Cannot form sequence-parallel groups of ${sp} over ${world} ranks: ` +
        `the SP size must be a positive divisor of the world size`,
    );
  }
  const dp = world / sp;
  const spStart = Math.floor(rank / sp) * sp;
  const spRanks = Array.from({ length: sp }, (_, i) => spStart + i);
  const dpRanks = Array.from({ length: dp }, (_, i) => (rank % sp) + i * sp);
  return {
    world: { kind: "world", ranks: Array.from({ length: world }, (_, i) => i), index: rank },
    sp: { kind: "sp", ranks: spRanks, index: rank - spStart },
    dp: { kind: "dp", ranks: dpRanks, index: Math.floor(rank / sp) },
  };
}

/**
 * The slice [start, end) of `n` elements owned by part `index` of `parts` (as even as
 * possible: the first n mod parts slices are one longer). Used by reduce-scatter.
 */
export function shardRange(n: number, parts: number, index: number): [number, number] {
  const base = Math.floor(n / parts), extra = n % parts;
  const start = index * base + Math.min(index, extra);
  return [start, start + base + (index < extra ? 1 : 0)];
}
