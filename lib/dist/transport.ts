/**
 * What every transport provides (tagged point-to-point messages of Float32Array payloads),
 * message tags, and the mailbox that matches incoming messages to waiting receives with a
 * timeout, so a rank never waits forever on a peer that is gone.
 * @module
 */
import type { CommCounters } from "./communicator.ts";
import type { RingJob } from "./ring.ts";

/** The result of a ring collective run by a transport ({@linkcode Transport.runRing}). */
export interface RingOutcome {
  /** The work buffer after the collective. */
  work: Float32Array;
  /** Messages and payload bytes it sent and received, and ms its receives waited. */
  traffic: CommCounters;
}

/**
 * A message tag: which step, layer and direction (or collective) a message belongs to.
 * All three are u32; they travel in the WebSocket frame header.
 */
export interface Tag {
  /** Training step (or any sequence number the sender and receiver agree on). */
  step: number;
  /** Layer index. */
  layer: number;
  /** Direction or channel: {@linkcode DIR_FORWARD}, {@linkcode DIR_BACKWARD}, or a collective's. */
  dir: number;
}

/** Forward state messages (S from rank t−1 to t). */
export const DIR_FORWARD = 0;
/** Backward state-gradient messages (G from rank t+1 to t). */
export const DIR_BACKWARD = 1;
/** LASP-2 all-gather of local states (forward). */
export const DIR_GATHER_FORWARD = 2;
/** LASP-2 all-gather of local state gradients (backward). */
export const DIR_GATHER_BACKWARD = 3;
/** Directions with this bit set belong to collectives (see communicator.ts). */
export const DIR_COLLECTIVE = 0x80000000;

/** Collective operations, in the low 4 bits of a collective tag's `dir`. */
export const COLLECTIVE_OPS = [
  "all-gather",
  "reduce-scatter",
  "all-reduce (scatter phase)",
  "all-reduce (gather phase)",
  "broadcast",
  "ring reduce-scatter",
  "ring all-gather",
  "ring all-reduce",
] as const;
/** A group kind: all ranks, the rank's sequence-parallel group, or its data-parallel group. */
export type GroupKind = "world" | "sp" | "dp";
/** Group kinds, in bits 4–7 of a collective tag's `dir`. */
export const GROUP_KINDS: readonly GroupKind[] = ["world", "sp", "dp"];

/** The tag of collective number `seq` of kind `op` in a group of kind `group`. */
export function collectiveTag(
  op: typeof COLLECTIVE_OPS[number],
  group: GroupKind,
  seq: number,
): Tag {
  const dir = DIR_COLLECTIVE | (GROUP_KINDS.indexOf(group) << 4) | COLLECTIVE_OPS.indexOf(op);
  return { step: seq >>> 0, layer: 0, dir: dir >>> 0 };
}

/** Human-readable tag for error messages. */
export function describeTag(tag: Tag): string {
  if (tag.dir >= DIR_COLLECTIVE) {
    const op = tag.dir & 0xf, group = (tag.dir >> 4) & 0xf;
    return `${COLLECTIVE_OPS[op] ?? `collective op ${op}`} #${tag.step} in the ${
      GROUP_KINDS[group] ?? group
    } group`;
  }
  const names = ["forward", "backward", "all-gather forward", "all-gather backward"];
  const dir = names[tag.dir] ?? `dir ${tag.dir}`;
  return `step ${tag.step} layer ${tag.layer} ${dir}`;
}

/** Checks that a tag's fields are u32. */
export function checkTag(tag: Tag): void {
  for (const [name, value] of Object.entries(tag)) {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new Error(`Invalid tag ${name} ${value}: must be an integer in [0, 2^32)`);
    }
  }
}

/**
 * Moves Float32Array payloads between the ranks of one run. Implementations: Workers in one
 * process (worker_transport.ts) and WebSockets (ws/ws_transport.ts).
 */
export interface Transport {
  /** This rank. */
  readonly rank: number;
  /** Number of ranks. */
  readonly world: number;
  /**
   * Sends `data` to every rank in `dsts`. With `transfer`, the transport may take over (detach)
   * `data`'s buffer instead of copying it; without, `data` is left intact.
   */
  send(dsts: readonly number[], tag: Tag, data: Float32Array, transfer: boolean): void;
  /** The next message from `src` with `tag`; rejects after `timeoutMs` naming the peer. */
  recv(src: number, tag: Tag, timeoutMs: number): Promise<Float32Array>;
  /** How a peer is reached, for error messages ("worker 2", "ws://10.0.0.3:29501"). */
  describePeer(rank: number): string;
  /**
   * Optional: runs a ring collective on this transport's own I/O thread, in place on `work`
   * (transferred there and back), with the traffic it caused. A transport that has this runs
   * every ring collective (its messages never reach `recv`).
   */
  runRing?(job: RingJob, work: Float32Array): Promise<RingOutcome>;
  /** Fails every pending and future receive with `error` (e.g. another rank failed). */
  abort(error: Error): void;
  /** Flushes outgoing messages and releases connections. */
  close(): Promise<void>;
}

interface Waiter {
  resolve(data: Float32Array): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

function keyOf(src: number, tag: Tag): string {
  return `${src}:${tag.step}:${tag.layer}:${tag.dir}`;
}

/**
 * Matches delivered messages to receives by (source, tag), in arrival order. Also records the
 * time receives spent waiting, and peers that failed (their receives reject at once).
 */
export class Mailbox {
  #queued = new Map<string, Float32Array[]>();
  #waiting = new Map<string, Waiter[]>();
  #failedPeers = new Map<number, Error>();
  #failedAll: Error | undefined;
  /** Milliseconds receives spent waiting for messages that had not arrived yet. */
  waitMs = 0;

  constructor(readonly rank: number, readonly describePeer: (rank: number) => string) {}

  /** Hands an arrived message to its receive, or queues it. */
  deliver(src: number, tag: Tag, data: Float32Array): void {
    const key = keyOf(src, tag);
    const waiter = this.#waiting.get(key)?.shift();
    if (waiter) {
      if (this.#waiting.get(key)!.length === 0) this.#waiting.delete(key);
      clearTimeout(waiter.timer);
      waiter.resolve(data);
      return;
    }
    let queue = this.#queued.get(key);
    if (!queue) this.#queued.set(key, queue = []);
    queue.push(data);
  }

  /** Waits for the message from `src` with `tag`. */
  receive(src: number, tag: Tag, timeoutMs: number): Promise<Float32Array> {
    const key = keyOf(src, tag);
    const queue = this.#queued.get(key);
    if (queue) {
      const data = queue.shift()!;
      if (queue.length === 0) this.#queued.delete(key);
      return Promise.resolve(data);
    }
    const failed = this.#failedAll ?? this.#failedPeers.get(src);
    if (failed) return Promise.reject(failed);
    const start = performance.now();
    return new Promise<Float32Array>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: (data) => {
          this.waitMs += performance.now() - start;
          resolve(data);
        },
        reject: (error) => {
          this.waitMs += performance.now() - start;
          reject(error);
        },
        timer: setTimeout(() => {
          const list = this.#waiting.get(key)!;
          list.splice(list.indexOf(waiter), 1);
          if (list.length === 0) this.#waiting.delete(key);
          waiter.reject(
            new Error(
              `Rank ${this.rank} timed out after ${timeoutMs} ms waiting for rank ${src} (${
                this.describePeer(src)
              }): ${describeTag(tag)}`,
            ),
          );
        }, timeoutMs),
      };
      let list = this.#waiting.get(key);
      if (!list) this.#waiting.set(key, list = []);
      list.push(waiter);
    });
  }

  /** Fails pending and future receives from `peer` (or from everyone when `peer` is undefined). */
  fail(error: Error, peer?: number): void {
    if (peer === undefined) this.#failedAll ??= error;
    else if (!this.#failedPeers.has(peer)) this.#failedPeers.set(peer, error);
    for (const [key, list] of this.#waiting) {
      if (peer !== undefined && !key.startsWith(`${peer}:`)) continue;
      this.#waiting.delete(key);
      for (const w of list) {
        clearTimeout(w.timer);
        w.reject(error);
      }
    }
  }

  /** Number of arrived messages nobody has received yet. */
  get pendingMessages(): number {
    let n = 0;
    for (const q of this.#queued.values()) n += q.length;
    return n;
  }
}
