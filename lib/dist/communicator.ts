/**
 * A rank's view of the run: its rank, world size, sequence- and data-parallel groups, tagged
 * point-to-point messages, and collectives (all-gather, reduce-scatter, all-reduce, broadcast,
 * barrier) on the world or a sub-group, on top of any {@linkcode Transport}. Payloads are
 * host Float32Arrays; GPU tensors are downloaded and uploaded by the caller in batches.
 *
 * Collectives exchange directly between group members (every message in flight at once:
 * latency of one hop, (G−1)/G of the data per rank for reduce-scatter). Sums are taken in
 * group order in float64 by the one rank that owns a shard, so every rank gets identical bits.
 * @module
 */
import { type Group, type RankGroups, rankGroups, shardRange } from "./groups.ts";
import { type RingJob, runRingJob } from "./ring.ts";
import {
  checkTag,
  type COLLECTIVE_OPS,
  collectiveTag,
  type GroupKind,
  type Tag,
  type Transport,
} from "./transport.ts";

/** Options of {@linkcode Communicator}. */
export interface CommunicatorOptions {
  /** Sequence-parallel group size; must divide the world size. Default: the world size. */
  sp?: number;
  /** Default receive timeout in milliseconds. Default 60 000. */
  timeoutMs?: number;
}

/** Traffic of one rank since the last {@linkcode Communicator.takeCounters}. */
export interface CommCounters {
  /** Messages sent, counted once per destination. */
  messagesSent: number;
  /** Payload bytes sent, counted once per destination. */
  bytesSent: number;
  /** Messages received. */
  messagesReceived: number;
  /** Payload bytes received. */
  bytesReceived: number;
  /** Milliseconds spent in receives waiting for messages not yet arrived. */
  waitMs: number;
}

/** Options of point-to-point receives. */
export interface RecvOptions {
  /** Override of the communicator's timeout. */
  timeoutMs?: number;
}

/** Options of collectives. */
export interface CollectiveOptions extends RecvOptions {
  /** Which group takes part. Default `"world"`. */
  group?: GroupKind;
}

/** Options of {@linkcode Communicator.allGather}. */
export interface AllGatherOptions extends CollectiveOptions {
  /**
   * Tag of the messages instead of the group's next collective tag (e.g. step/layer/direction
   * of a LASP-2 exchange); all members must pass the same tag.
   */
  tag?: Tag;
}

function zeroCounters(): CommCounters {
  return { messagesSent: 0, bytesSent: 0, messagesReceived: 0, bytesReceived: 0, waitMs: 0 };
}

/** Ranks, groups and collectives over one transport. */
export class Communicator {
  /** This rank's world, sequence-parallel and data-parallel groups. */
  readonly groups: RankGroups;
  /** Default receive timeout, ms. */
  readonly timeoutMs: number;
  #counters = zeroCounters();
  #seq = new Map<GroupKind, number>();

  /** A communicator over `transport` (its rank and world size) with the given SP size. */
  constructor(readonly transport: Transport, options: CommunicatorOptions = {}) {
    this.groups = rankGroups(transport.rank, transport.world, options.sp ?? transport.world);
    this.timeoutMs = options.timeoutMs ?? 60_000;
    if (!(this.timeoutMs > 0)) {
      throw new Error(`Invalid timeoutMs ${this.timeoutMs}: must be positive`);
    }
  }

  /** A communicator of world size 1 (no messages ever travel). */
  static solo(options: CommunicatorOptions = {}): Communicator {
    return new Communicator(new SoloTransport(), options);
  }

  /** This rank, in [0, world). */
  get rank(): number {
    return this.transport.rank;
  }
  /** Number of ranks W. */
  get world(): number {
    return this.transport.world;
  }
  /** Sequence-parallel size T. */
  get sp(): number {
    return this.groups.sp.ranks.length;
  }
  /** Data-parallel size. */
  get dp(): number {
    return this.groups.dp.ranks.length;
  }
  /** Sequence rank t: this rank's position in its SP group. */
  get spRank(): number {
    return this.groups.sp.index;
  }
  /** Position in the DP group (which batch shard this rank holds). */
  get dpRank(): number {
    return this.groups.dp.index;
  }

  /** Sends `data` to `dst`; with `transfer`, `data`'s buffer may be detached instead of copied. */
  send(dst: number, tag: Tag, data: Float32Array, options: { transfer?: boolean } = {}): void {
    checkTag(tag);
    this.#send([dst], tag, data, options.transfer ?? false);
  }

  /** Receives the next message from `src` with `tag`. */
  recv(src: number, tag: Tag, options: RecvOptions = {}): Promise<Float32Array> {
    checkTag(tag);
    return this.#recv(src, tag, options.timeoutMs);
  }

  /** Concatenation of every member's `data` in group order ([G·n]); all must have length n. */
  async allGather(data: Float32Array, options: AllGatherOptions = {}): Promise<Float32Array> {
    const group = this.#group(options.group);
    if (options.tag) checkTag(options.tag);
    const tag = options.tag ?? this.#nextTag("all-gather", group.kind);
    const n = data.length;
    const out = new Float32Array(group.ranks.length * n);
    out.set(data, group.index * n);
    await this.#exchange(group, tag, data, options.timeoutMs, (i, got) => {
      if (got.length !== n) {
        throw new Error(
          `all-gather in the ${group.kind} group: rank ${group.ranks[i]} sent ${got.length} ` +
            `values, rank ${this.rank} has ${n}; all members must pass equal lengths`,
        );
      }
      out.set(got, i * n);
    });
    return out;
  }

  /**
   * Sum over the group of `data`, of which this rank gets its shard `shardRange(n, G, index)`.
   * All members must pass equal lengths.
   */
  reduceScatter(data: Float32Array, options: CollectiveOptions = {}): Promise<Float32Array> {
    const group = this.#group(options.group);
    return this.#reduceShard(group, data, "reduce-scatter", options.timeoutMs);
  }

  /** Sum over the group of `data` (identical on every member). */
  async allReduce(data: Float32Array, options: CollectiveOptions = {}): Promise<Float32Array> {
    const group = this.#group(options.group);
    const size = group.ranks.length, n = data.length;
    const mine = await this.#reduceShard(
      group,
      data,
      "all-reduce (scatter phase)",
      options.timeoutMs,
    );
    const out = new Float32Array(n);
    out.set(mine, shardRange(n, size, group.index)[0]);
    const tag = this.#nextTag("all-reduce (gather phase)", group.kind);
    await this.#exchange(group, tag, mine, options.timeoutMs, (i, got) => {
      const [start, end] = shardRange(n, size, i);
      if (got.length !== end - start) {
        throw new Error(
          `all-reduce in the ${group.kind} group: rank ${group.ranks[i]} sent a shard of ` +
            `${got.length} values, expected ${end - start} (lengths differ between ranks)`,
        );
      }
      out.set(got, start);
    });
    return out;
  }

  /** The `data` of group member `root` (default 0) on every member; others may pass undefined. */
  async broadcast(
    data: Float32Array | undefined,
    options: CollectiveOptions & { root?: number } = {},
  ): Promise<Float32Array> {
    const group = this.#group(options.group);
    const root = options.root ?? 0;
    if (!Number.isInteger(root) || root < 0 || root >= group.ranks.length) {
      throw new Error(
        `Invalid broadcast root ${root}: must be a member index in [0, ${group.ranks.length})`,
      );
    }
    const tag = this.#nextTag("broadcast", group.kind);
    if (group.index === root) {
      if (!data) throw new Error(`broadcast: the root (rank ${this.rank}) must pass data`);
      this.#send(group.ranks.filter((r) => r !== this.rank), tag, data, false);
      return data;
    }
    return await this.#recv(group.ranks[root], tag, options.timeoutMs);
  }

  /** Returns once every member of the group has called it. */
  async barrier(options: CollectiveOptions = {}): Promise<void> {
    await this.allGather(new Float32Array(0), options);
  }

  /**
   * Runs a ring collective (lib/dist/ring.ts) in place on `work`: on the transport's I/O
   * thread when it has one (the ring then keeps moving while this thread is blocked, e.g. by
   * a GPU wait), else here through {@linkcode send} and {@linkcode recv}. Returns the result.
   */
  async runRing(job: RingJob, work: Float32Array): Promise<Float32Array> {
    if (job.ranks.length > 1 && this.transport.runRing) {
      const { work: out, traffic } = await this.transport.runRing(job, work);
      for (const key of Object.keys(traffic) as (keyof CommCounters)[]) {
        this.#counters[key] += traffic[key];
      }
      return out;
    }
    await runRingJob(job, work, {
      send: (dst, tag, data) => this.send(dst, tag, data),
      recv: (src, tag, timeoutMs) => this.recv(src, tag, { timeoutMs }),
    });
    return work;
  }

  /** Traffic counters since the last take (or since creation). */
  get counters(): Readonly<CommCounters> {
    return { ...this.#counters };
  }
  /** Returns the counters and resets them (call once per step). */
  takeCounters(): CommCounters {
    const c = this.#counters;
    this.#counters = zeroCounters();
    return c;
  }

  /** Flushes and closes the transport. */
  close(): Promise<void> {
    return this.transport.close();
  }

  #group(kind: GroupKind = "world"): Group {
    const group = this.groups[kind];
    if (!group) {
      throw new Error(`Unknown group "${kind}": must be "world", "sp" or "dp"`);
    }
    return group;
  }

  #nextTag(op: typeof COLLECTIVE_OPS[number], kind: GroupKind): Tag {
    const seq = this.#seq.get(kind) ?? 0;
    this.#seq.set(kind, seq + 1);
    return collectiveTag(op, kind, seq);
  }

  #send(dsts: readonly number[], tag: Tag, data: Float32Array, transfer: boolean): void {
    if (dsts.length === 0) return;
    for (const dst of dsts) {
      if (!Number.isInteger(dst) || dst < 0 || dst >= this.world || dst === this.rank) {
        throw new Error(
          `Rank ${this.rank} cannot send to rank ${dst}: must be another rank in [0, ${this.world})`,
        );
      }
    }
    this.#counters.messagesSent += dsts.length;
    this.#counters.bytesSent += data.byteLength * dsts.length;
    this.transport.send(dsts, tag, data, transfer);
  }

  async #recv(src: number, tag: Tag, timeoutMs = this.timeoutMs): Promise<Float32Array> {
    if (!Number.isInteger(src) || src < 0 || src >= this.world || src === this.rank) {
      throw new Error(
        `Rank ${this.rank} cannot receive from rank ${src}: must be another rank in [0, ${this.world})`,
      );
    }
    const start = performance.now();
    const data = await this.transport.recv(src, tag, timeoutMs);
    this.#counters.waitMs += performance.now() - start;
    this.#counters.messagesReceived++;
    this.#counters.bytesReceived += data.byteLength;
    return data;
  }

  /** Sends `data` to every other member and hands each member's message to `take`. */
  async #exchange(
    group: Group,
    tag: Tag,
    data: Float32Array,
    timeoutMs: number | undefined,
    take: (index: number, data: Float32Array) => void,
  ): Promise<void> {
    this.#send(group.ranks.filter((r) => r !== this.rank), tag, data, false);
    await Promise.all(group.ranks.map(async (r, i) => {
      if (r !== this.rank) take(i, await this.#recv(r, tag, timeoutMs));
    }));
  }

  /** Phase one of reduce-scatter/all-reduce: shard j to member j, summed in group order. */
  async #reduceShard(
    group: Group,
    data: Float32Array,
    op: typeof COLLECTIVE_OPS[number],
    timeoutMs: number | undefined,
  ): Promise<Float32Array> {
    const size = group.ranks.length, n = data.length;
    const tag = this.#nextTag(op, group.kind);
    group.ranks.forEach((r, j) => {
      if (r === this.rank) return;
      const [start, end] = shardRange(n, size, j);
      this.#send([r], tag, data.subarray(start, end), false);
    });
    const [start, end] = shardRange(n, size, group.index);
    const parts = await Promise.all(
      group.ranks.map((r) =>
        r === this.rank ? data.subarray(start, end) : this.#recv(r, tag, timeoutMs)
      ),
    );
    const acc = new Float64Array(end - start);
    parts.forEach((part, i) => {
      if (part.length !== acc.length) {
        throw new Error(
          `${op} in the ${group.kind} group: rank ${group.ranks[i]} sent ${part.length} values ` +
            `for shard ${group.index}, expected ${acc.length} (lengths differ between ranks)`,
        );
      }
      for (let k = 0; k < acc.length; k++) acc[k] += part[k];
    });
    return Float32Array.from(acc);
  }
}

/** The transport of a single rank: there is nobody to talk to. */
class SoloTransport implements Transport {
  readonly rank = 0;
  readonly world = 1;
  send(dsts: readonly number[]): void {
    throw new Error(`Rank 0 of a world of 1 cannot send to rank ${dsts[0]}`);
  }
  recv(src: number): Promise<Float32Array> {
    return Promise.reject(new Error(`Rank 0 of a world of 1 cannot receive from rank ${src}`));
  }
  describePeer(): string {
    return "no peers in a world of 1";
  }
  abort(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
}
