/**
 * Ring collectives: reduce-scatter, all-gather and all-reduce (reduce-scatter then
 * all-gather) over the members of a group arranged in a ring. Each of the G−1 steps of a
 * phase sends one chunk to the right neighbour and receives one from the left, so every rank
 * sends 2(G−1)/G of the buffer for an all-reduce whatever G is (bandwidth-optimal), where the
 * direct exchange of {@linkcode Communicator.allReduce} has every rank talk to every other.
 * Chunks are cut into pieces of at most `pieceBytes` that travel the ring independently: a
 * piece moves on as soon as it has arrived and been added, so large buffers stream.
 *
 * Rounding: element i of chunk c (c = the member that ends up owning it, `shardRange`) is
 * summed in ring order starting at member c+1: ((x[c+1] + x[c+2]) + …) + x[c], in float32 with
 * one rounding per hop (G−1 roundings). Each element is reduced exactly once and then copied,
 * so every member gets identical bits. The direct collectives of the Communicator instead sum
 * in float64 in group order and round once, so the two can differ in the last bits (by at most
 * (G−1)/2 ulp of the partial sums per element); on integer-valued inputs both are exact.
 * @module
 */
import type { Communicator } from "./communicator.ts";
import { type Group, shardRange } from "./groups.ts";
import { collectiveTag, type GroupKind, type Tag } from "./transport.ts";

/** Options of the ring collectives. */
export interface RingOptions {
  /** Which group takes part. Default `"world"`. */
  group?: GroupKind;
  /** Receive timeout, ms. Default: the communicator's. */
  timeoutMs?: number;
  /** Largest message, in bytes (a multiple of 4). Default 1 MiB. */
  pieceBytes?: number;
}

/** Options of {@linkcode ringAllGather}. */
export interface RingAllGatherOptions extends RingOptions {
  /**
   * Length of the gathered result, when member i holds `shardRange(total, G, i)` (lengths may
   * differ by one). Default: G × this member's length (all lengths equal).
   */
  total?: number;
}

/** Default message size of the ring collectives: several pieces per chunk keep the ring streaming. */
export const DEFAULT_PIECE_BYTES = 1 << 20;

type RingOp = "ring reduce-scatter" | "ring all-gather" | "ring all-reduce";

/**
 * Per-communicator sequence numbers of ring collectives, per group kind and operation: the
 * calls of one operation on one group must come in the same order on every member, while
 * different operations may interleave differently (e.g. bucket reduce-scatters started as
 * downloads finish, beside ZeRO-3 parameter all-gathers issued by the model).
 */
const sequences = new WeakMap<Communicator, Map<string, number>>();

/** One ring collective as this member sees it: neighbours, chunks, pieces, tags. */
class Ring {
  readonly group: Group;
  readonly size: number;
  readonly index: number;
  readonly left: number;
  readonly right: number;
  /** Chunk c is [starts[c], starts[c+1]). */
  readonly starts: number[];
  /** Pieces per chunk. */
  readonly pieces: number;
  readonly timeoutMs: number | undefined;
  readonly #seq: number;
  readonly #dir: number;

  constructor(
    readonly comm: Communicator,
    readonly op: RingOp,
    readonly n: number,
    options: RingOptions,
  ) {
    const kind = options.group ?? "world";
    const group = comm.groups[kind];
    if (!group) throw new Error(`Unknown group "${kind}": must be "world", "sp" or "dp"`);
    const pieceBytes = options.pieceBytes ?? DEFAULT_PIECE_BYTES;
    if (!Number.isInteger(pieceBytes) || pieceBytes < 4 || pieceBytes % 4 !== 0) {
      throw new Error(`Invalid pieceBytes ${pieceBytes}: must be a positive multiple of 4`);
    }
    this.group = group;
    this.size = group.ranks.length;
    this.index = group.index;
    this.left = group.ranks[(this.index + this.size - 1) % this.size];
    this.right = group.ranks[(this.index + 1) % this.size];
    this.starts = Array.from(
      { length: this.size + 1 },
      (_, c) => c < this.size ? shardRange(n, this.size, c)[0] : n,
    );
    const largest = Math.ceil(n / this.size);
    this.pieces = Math.max(1, Math.ceil(largest / (pieceBytes / 4)));
    this.timeoutMs = options.timeoutMs;
    let seqs = sequences.get(comm);
    if (!seqs) sequences.set(comm, seqs = new Map());
    const key = `${kind}/${op}`;
    this.#seq = seqs.get(key) ?? 0;
    seqs.set(key, this.#seq + 1);
    this.#dir = collectiveTag(op, kind, 0).dir;
  }

  /** Chunk index `c` taken modulo the ring size. */
  chunk(c: number): number {
    return ((c % this.size) + this.size) % this.size;
  }

  /** [start, end) of piece `j` of chunk `c` in the full buffer. */
  piece(c: number, j: number): [number, number] {
    const start = this.starts[c];
    const [s, e] = shardRange(this.starts[c + 1] - start, this.pieces, j);
    return [start + s, start + e];
  }

  /** Tag of piece `j` at step `k` of phase `phase` (0: reduce-scatter, 1: all-gather). */
  tag(phase: number, j: number, k: number): Tag {
    const steps = this.size - 1;
    return { step: this.#seq >>> 0, layer: (j * 2 + phase) * steps + k, dir: this.#dir };
  }

  async #receive(phase: number, j: number, k: number, c: number): Promise<Float32Array> {
    const got = await this.comm.recv(this.left, this.tag(phase, j, k), {
      timeoutMs: this.timeoutMs,
    });
    const [s, e] = this.piece(c, j);
    if (got.length !== e - s) {
      throw new Error(
        `${this.op} in the ${this.group.kind} group: rank ${this.left} sent ${got.length} values ` +
          `of chunk ${c}, rank ${this.comm.rank} expected ${e - s} (lengths differ between ranks)`,
      );
    }
    return got;
  }

  /**
   * Reduce-scatter phase in place on `work` ([n]): afterwards this member's chunk holds the
   * sum over the group. Step k sends chunk index−k−1 (own values at k = 0, then partial sums)
   * and adds the received chunk index−k−2; the last step brings chunk `index`.
   */
  reduceScatter(work: Float32Array): Promise<void> {
    const steps = this.size - 1;
    return this.#eachPiece(async (j) => {
      for (let k = 0; k < steps; k++) {
        const [ss, se] = this.piece(this.chunk(this.index - k - 1), j);
        this.comm.send(this.right, this.tag(0, j, k), work.subarray(ss, se));
        const c = this.chunk(this.index - k - 2);
        const got = await this.#receive(0, j, k, c);
        const dst = work.subarray(...this.piece(c, j));
        for (let i = 0; i < got.length; i++) dst[i] = got[i] + dst[i];
      }
    });
  }

  /** All-gather phase in place on `work`: own chunk in, every chunk out. */
  allGather(work: Float32Array): Promise<void> {
    const steps = this.size - 1;
    return this.#eachPiece(async (j) => {
      for (let k = 0; k < steps; k++) {
        const [ss, se] = this.piece(this.chunk(this.index - k), j);
        this.comm.send(this.right, this.tag(1, j, k), work.subarray(ss, se));
        const c = this.chunk(this.index - k - 1);
        work.set(await this.#receive(1, j, k, c), this.piece(c, j)[0]);
      }
    });
  }

  async #eachPiece(run: (j: number) => Promise<void>): Promise<void> {
    if (this.size === 1) return;
    await Promise.all(Array.from({ length: this.pieces }, (_, j) => run(j)));
  }
}

/**
 * Sum over the group of `data` (all members pass equal lengths), identical on every member;
 * 2(G−1) ring steps. `data` is left intact.
 */
export async function ringAllReduce(
  comm: Communicator,
  data: Float32Array,
  options: RingOptions = {},
): Promise<Float32Array> {
  const ring = new Ring(comm, "ring all-reduce", data.length, options);
  const work = data.slice();
  await ring.reduceScatter(work);
  await ring.allGather(work);
  return work;
}

/**
 * This member's shard `shardRange(n, G, index)` of the sum over the group of `data` (all
 * members pass equal lengths n); G−1 ring steps. `data` is left intact.
 */
export async function ringReduceScatter(
  comm: Communicator,
  data: Float32Array,
  options: RingOptions = {},
): Promise<Float32Array> {
  const ring = new Ring(comm, "ring reduce-scatter", data.length, options);
  const work = data.slice();
  await ring.reduceScatter(work);
  return work.slice(ring.starts[ring.index], ring.starts[ring.index + 1]);
}

/**
 * Concatenation of every member's `shard` in group order; G−1 ring steps. With `total`,
 * member i's shard is `shardRange(total, G, i)` of the result (the layout reduce-scatter
 * leaves); without, all shards have this member's length.
 */
export async function ringAllGather(
  comm: Communicator,
  shard: Float32Array,
  options: RingAllGatherOptions = {},
): Promise<Float32Array> {
  const size = comm.groups[options.group ?? "world"]?.ranks.length ?? 1;
  const total = options.total ?? shard.length * size;
  if (!Number.isSafeInteger(total) || total < 0) {
    throw new Error(`ring all-gather: invalid total ${total}: must be an integer ≥ 0`);
  }
  const ring = new Ring(comm, "ring all-gather", total, options);
  const [start, end] = [ring.starts[ring.index], ring.starts[ring.index + 1]];
  if (shard.length !== end - start) {
    throw new Error(
      `ring all-gather: rank ${comm.rank} passed ${shard.length} values, but member ` +
        `${ring.index} of ${ring.size} owns ${end - start} of ${total} (shardRange)`,
    );
  }
  const work = new Float32Array(total);
  work.set(shard, start);
  await ring.allGather(work);
  return work;
}
