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
import { shardRange } from "./groups.ts";
import { collectiveTag, GROUP_KINDS, type GroupKind, type Tag } from "./transport.ts";

/** Options of the ring collectives. */
export interface RingOptions {
  /** Which group takes part. Default `"world"`. */
  group?: GroupKind;
  /** Receive timeout, ms. Default: the communicator's. */
  timeoutMs?: number;
  /** Largest message, in bytes (a multiple of 4). Default 1 MiB. */
  pieceBytes?: number;
  /**
   * All-reduce and reduce-scatter: work in `data` itself instead of a copy, and leave it
   * undefined afterwards (it may be detached). Saves a copy of the buffer into fresh memory.
   */
  consume?: boolean;
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

/** The three ring collectives. */
export type RingOp = "ring reduce-scatter" | "ring all-gather" | "ring all-reduce";
const RING_OPS: readonly RingOp[] = ["ring reduce-scatter", "ring all-gather", "ring all-reduce"];

/**
 * One ring collective as this member runs it, in plain data: a transport may run it on its I/O
 * thread ({@linkcode Transport.runRing}), where it keeps going while this rank's thread is busy
 * (Deno's built-in WebGPU blocks that thread for as long as it waits on the GPU).
 */
export interface RingJob {
  /** Which collective. */
  op: RingOp;
  /** The group's kind. */
  kind: GroupKind;
  /** The group's members in ring order. */
  ranks: number[];
  /** This member's position in `ranks`. */
  index: number;
  /** This member's rank. */
  rank: number;
  /** Length of the work buffer. */
  n: number;
  /** Largest message, bytes. */
  pieceBytes: number;
  /** This operation's sequence number in this group (equal on every member). */
  seq: number;
  /** Receive timeout, ms. */
  timeoutMs: number;
}

/** How a ring moves its pieces: through the communicator, or through a transport's sockets. */
export interface RingLink {
  /** Sends `data` (the link copies it if it must: the ring writes to the buffer later). */
  send(dst: number, tag: Tag, data: Float32Array): void;
  /** The next message from `src` with `tag`; rejects after `timeoutMs`. */
  recv(src: number, tag: Tag, timeoutMs: number): Promise<Float32Array>;
}

/** Whether `tag` belongs to a ring collective (which a transport may run off the rank thread). */
export function isRingTag(tag: Tag): boolean {
  return RING_DIRS.has(tag.dir);
}
const RING_DIRS = new Set(
  GROUP_KINDS.flatMap((k) => RING_OPS.map((op) => collectiveTag(op, k, 0).dir)),
);

/**
 * Per-communicator sequence numbers of ring collectives, per group kind and operation: the
 * calls of one operation on one group must come in the same order on every member, while
 * different operations may interleave differently (e.g. bucket reduce-scatters started as
 * downloads finish, beside ZeRO-3 parameter all-gathers issued by the model).
 */
const sequences = new WeakMap<Communicator, Map<string, number>>();

/** The job of ring collective `op` over a buffer of `n` values on `comm`. */
function ringJob(comm: Communicator, op: RingOp, n: number, options: RingOptions): RingJob {
  const kind = options.group ?? "world";
  const group = comm.groups[kind];
  if (!group) throw new Error(`Unknown group "${kind}": must be "world", "sp" or "dp"`);
  const pieceBytes = options.pieceBytes ?? DEFAULT_PIECE_BYTES;
  if (!Number.isInteger(pieceBytes) || pieceBytes < 4 || pieceBytes % 4 !== 0) {
    throw new Error(`Invalid pieceBytes ${pieceBytes}: must be a positive multiple of 4`);
  }
  let seqs = sequences.get(comm);
  if (!seqs) sequences.set(comm, seqs = new Map());
  const key = `${kind}/${op}`;
  const seq = seqs.get(key) ?? 0;
  seqs.set(key, seq + 1);
  return {
    op,
    kind,
    ranks: [...group.ranks],
    index: group.index,
    rank: comm.rank,
    n,
    pieceBytes,
    seq,
    timeoutMs: options.timeoutMs ?? comm.timeoutMs,
  };
}

/** One ring collective as this member sees it: neighbours, chunks, pieces, tags. */
class Ring {
  readonly size: number;
  readonly left: number;
  readonly right: number;
  /** Chunk c is [starts[c], starts[c+1]). */
  readonly starts: number[];
  /** Pieces per chunk. */
  readonly pieces: number;
  readonly #dir: number;

  constructor(readonly job: RingJob, readonly link: RingLink) {
    const { ranks, index, n } = job;
    this.size = ranks.length;
    this.left = ranks[(index + this.size - 1) % this.size];
    this.right = ranks[(index + 1) % this.size];
    this.starts = ringStarts(n, this.size);
    const largest = Math.ceil(n / this.size);
    this.pieces = Math.max(1, Math.ceil(largest / (job.pieceBytes / 4)));
    this.#dir = collectiveTag(job.op, job.kind, 0).dir;
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
    return { step: this.job.seq >>> 0, layer: (j * 2 + phase) * steps + k, dir: this.#dir };
  }

  async #receive(phase: number, j: number, k: number, c: number): Promise<Float32Array> {
    const got = await this.link.recv(this.left, this.tag(phase, j, k), this.job.timeoutMs);
    const [s, e] = this.piece(c, j);
    if (got.length !== e - s) {
      throw new Error(
        `${this.job.op} in the ${this.job.kind} group: rank ${this.left} sent ${got.length} ` +
          `values of chunk ${c}, rank ${this.job.rank} expected ${
            e - s
          } (lengths differ between ranks)`,
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
    const steps = this.size - 1, index = this.job.index;
    return this.#eachPiece(async (j) => {
      for (let k = 0; k < steps; k++) {
        const [ss, se] = this.piece(this.chunk(index - k - 1), j);
        this.link.send(this.right, this.tag(0, j, k), work.subarray(ss, se));
        const c = this.chunk(index - k - 2);
        const got = await this.#receive(0, j, k, c);
        const dst = work.subarray(...this.piece(c, j));
        for (let i = 0; i < got.length; i++) dst[i] = got[i] + dst[i];
      }
    });
  }

  /** All-gather phase in place on `work`: own chunk in, every chunk out. */
  allGather(work: Float32Array): Promise<void> {
    const steps = this.size - 1, index = this.job.index;
    return this.#eachPiece(async (j) => {
      for (let k = 0; k < steps; k++) {
        const [ss, se] = this.piece(this.chunk(index - k), j);
        this.link.send(this.right, this.tag(1, j, k), work.subarray(ss, se));
        const c = this.chunk(index - k - 1);
        work.set(await this.#receive(1, j, k, c), this.piece(c, j)[0]);
      }
    });
  }

  async #eachPiece(run: (j: number) => Promise<void>): Promise<void> {
    if (this.size === 1) return;
    await Promise.all(Array.from({ length: this.pieces }, (_, j) => run(j)));
  }
}

/** Chunk starts of a ring of `size` over `n` values: chunk c is [starts[c], starts[c+1]). */
function ringStarts(n: number, size: number): number[] {
  return Array.from({ length: size + 1 }, (_, c) => c < size ? shardRange(n, size, c)[0] : n);
}

/**
 * Runs `job` in place on `work` ([job.n]) over `link`: reduce-scatter, all-gather, or both
 * for an all-reduce. Used by the communicator and by transports that run rings themselves.
 */
export async function runRingJob(job: RingJob, work: Float32Array, link: RingLink): Promise<void> {
  const ring = new Ring(job, link);
  if (job.op !== "ring all-gather") await ring.reduceScatter(work);
  if (job.op !== "ring reduce-scatter") await ring.allGather(work);
}

/**
 * Sum over the group of `data` (all members pass equal lengths), identical on every member;
 * 2(G−1) ring steps. `data` is left intact unless `options.consume`.
 */
export async function ringAllReduce(
  comm: Communicator,
  data: Float32Array,
  options: RingOptions = {},
): Promise<Float32Array> {
  const job = ringJob(comm, "ring all-reduce", data.length, options);
  return await comm.runRing(job, options.consume ? data : data.slice());
}

/**
 * This member's shard `shardRange(n, G, index)` of the sum over the group of `data` (all
 * members pass equal lengths n); G−1 ring steps. `data` is left intact unless `options.consume`.
 */
export async function ringReduceScatter(
  comm: Communicator,
  data: Float32Array,
  options: RingOptions = {},
): Promise<Float32Array> {
  const job = ringJob(comm, "ring reduce-scatter", data.length, options);
  const work = await comm.runRing(job, options.consume ? data : data.slice());
  const starts = ringStarts(job.n, job.ranks.length);
  return work.slice(starts[job.index], starts[job.index + 1]);
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
  const job = ringJob(comm, "ring all-gather", total, options);
  const starts = ringStarts(total, job.ranks.length);
  const [start, end] = [starts[job.index], starts[job.index + 1]];
  if (shard.length !== end - start) {
    throw new Error(
      `ring all-gather: rank ${comm.rank} passed ${shard.length} values, but member ` +
        `${job.index} of ${job.ranks.length} owns ${end - start} of ${total} (shardRange)`,
    );
  }
  const work = new Float32Array(total);
  work.set(shard, start);
  return await comm.runRing(job, work);
}
