/**
 * The flat layout of parameters, gradients and optimizer moments that data-parallel gradient
 * reduction and ZeRO share. Parameters are grouped into units (gradient buckets, and for
 * ZeRO-3 the gather units); each unit is one flat buffer of its parameters in order, and rank
 * r of W owns the slice `shardRange(unit.size, W, r)` of every unit — exactly the slice a
 * reduce-scatter of the unit leaves on it. A shard cuts parameters at arbitrary points, so it
 * is described as segments (one per parameter it touches) that carry the parameter's
 * weight-decay rule.
 * @module
 */
import { shardRange } from "../dist/groups.ts";

/** A parameter as the layout sees it. */
export interface FlatParam {
  /** Checkpoint name. */
  name: string;
  /** Number of elements. */
  size: number;
  /** AdamW applies weight decay to it. */
  decay: boolean;
}

/** A parameter's place in its unit. */
export interface UnitEntry extends FlatParam {
  /** First element in the unit's flat buffer. */
  offset: number;
}

/** One flat buffer of parameters (a bucket / gather unit). */
export interface FlatUnit {
  /** Position in {@linkcode ZeroLayout.units}. */
  index: number;
  /** Parameters in flat order. */
  entries: UnitEntry[];
  /** Elements in the unit. */
  size: number;
}

/** The part of one parameter that lies in a rank's shard of a unit. */
export interface ShardSegment {
  /** Parameter name. */
  name: string;
  /** First element in the parameter. */
  paramStart: number;
  /** First element in the rank's shard of the unit. */
  shardStart: number;
  /** Elements. */
  length: number;
  /** Weight decay applies. */
  decay: boolean;
}

/** Bytes one rank holds, by kind (f32). */
export interface ZeroMemory {
  /** ZeRO stage. */
  stage: 0 | 1 | 2 | 3;
  /** Parameters resident (ZeRO-3: the shard plus the largest gathered unit). */
  paramBytes: number;
  /** Gradients resident (ZeRO-2/3: the shard plus the largest bucket in flight). */
  gradBytes: number;
  /** AdamW moments m and v. */
  momentBytes: number;
  /** Sum of the three. */
  totalBytes: number;
}

/** Units over `world` ranks as seen from `rank`. */
export class ZeroLayout {
  /** Units in reduction order. */
  readonly units: FlatUnit[];
  /** Elements in all units. */
  readonly total: number;
  readonly #unitOf = new Map<string, number>();

  /** A layout of `units` (lists of parameters) over `world` ranks, seen from `rank`. */
  constructor(units: FlatParam[][], readonly world: number, readonly rank: number) {
    if (
      !Number.isInteger(world) || world < 1 || !Number.isInteger(rank) || rank < 0 || rank >= world
    ) {
      throw new Error(`Invalid rank ${rank} of world ${world}: need 0 ≤ rank < world, world ≥ 1`);
    }
    this.units = units.map((params, index) => {
      let offset = 0;
      const entries = params.map((p) => {
        if (!Number.isInteger(p.size) || p.size < 0) {
          throw new Error(`Invalid size ${p.size} of parameter ${p.name}: must be an integer ≥ 0`);
        }
        if (this.#unitOf.has(p.name)) {
          throw new Error(`Parameter ${p.name} appears in two units of the layout`);
        }
        this.#unitOf.set(p.name, index);
        const entry = { ...p, offset };
        offset += p.size;
        return entry;
      });
      return { index, entries, size: offset };
    });
    this.total = this.units.reduce((n, u) => n + u.size, 0);
  }

  /** Index of the unit holding parameter `name`. */
  unitOf(name: string): number {
    const u = this.#unitOf.get(name);
    if (u === undefined) throw new Error(`Unknown parameter ${name}: not in the ZeRO layout`);
    return u;
  }

  /** [start, end) of `rank`'s shard of unit `u` (default: this rank). */
  shard(u: number, rank = this.rank): [number, number] {
    return shardRange(this.units[u].size, this.world, rank);
  }

  /** Segments of this rank's shard of unit `u`, in flat order. */
  segments(u: number): ShardSegment[] {
    const [start, end] = this.shard(u);
    const out: ShardSegment[] = [];
    for (const e of this.units[u].entries) {
      const a = Math.max(start, e.offset), b = Math.min(end, e.offset + e.size);
      if (b > a) {
        out.push({
          name: e.name,
          paramStart: a - e.offset,
          shardStart: a - start,
          length: b - a,
          decay: e.decay,
        });
      }
    }
    return out;
  }

  /** Elements of `rank`'s shards over all units. */
  shardElements(rank = this.rank): number {
    return this.units.reduce(
      (n, u) => n + (this.shard(u.index, rank)[1] - this.shard(u.index, rank)[0]),
      0,
    );
  }

  /** Elements of the largest unit. */
  get largestUnit(): number {
    return this.units.reduce((m, u) => Math.max(m, u.size), 0);
  }

  /**
   * Bytes per rank (the largest shard, rank 0) of f32 parameters, gradients and AdamW
   * moments at ZeRO `stage`: 0 replicates all; 1 shards the moments; 2 also the gradients
   * (a full bucket exists while it is reduced); 3 also the parameters (a full unit exists
   * while it is gathered).
   */
  memory(stage: 0 | 1 | 2 | 3): ZeroMemory {
    const full = 4 * this.total, shard = 4 * this.shardElements(0);
    const unit = 4 * this.largestUnit;
    // a full unit (bucket being reduced, layer gathered) exists beside the shards, never more
    // than everything
    const paramBytes = stage === 3 ? Math.min(full, shard + unit) : full;
    const gradBytes = stage >= 2 ? Math.min(full, shard + unit) : full;
    const momentBytes = stage === 0 ? 2 * full : 2 * shard;
    return {
      stage,
      paramBytes,
      gradBytes,
      momentBytes,
      totalBytes: paramBytes + gradBytes + momentBytes,
    };
  }
}

/**
 * Buckets of about `bucketBytes` (f32) of whole parameters, taken in the order given (pass the
 * order in which the backward finishes gradients: a bucket can be reduced once all of its
 * gradients are final). A parameter larger than the bucket size gets a bucket of its own.
 */
export function bucketUnits(params: readonly FlatParam[], bucketBytes: number): FlatParam[][] {
  if (!(bucketBytes > 0)) throw new Error(`Invalid bucket size ${bucketBytes} bytes: must be > 0`);
  const out: FlatParam[][] = [];
  let current: FlatParam[] = [], bytes = 0;
  for (const p of params) {
    if (current.length > 0 && bytes + 4 * p.size > bucketBytes) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(p);
    bytes += 4 * p.size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/**
 * Gather units of ZeRO-3 in backward order: one per transformer layer (`layers.<l>.`), one for
 * the parameters after the last layer (final norm, LM head) and one for those before the
 * first (embedding). With tied embeddings the embedding unit is needed at both ends.
 */
export function layerUnits(params: readonly FlatParam[]): FlatParam[][] {
  const groups = new Map<string, FlatParam[]>();
  let seenLayer = false;
  const order: string[] = [];
  for (const p of params) {
    const m = /^layers\.(\d+)\./.exec(p.name);
    const key = m ? `layer ${m[1]}` : seenLayer ? "tail" : "head";
    if (m) seenLayer = true;
    if (!groups.has(key)) {
      groups.set(key, []);
      order.push(key);
    }
    groups.get(key)!.push(p);
  }
  return order.reverse().map((k) => groups.get(k)!);
}

/** Parameters in the order the backward finishes their gradients (reverse of the forward). */
export function backwardOrder<T>(params: readonly T[]): T[] {
  return [...params].reverse();
}
