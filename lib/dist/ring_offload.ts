/**
 * Ring collectives run on a helper thread of a rank (the WebSocket transport's I/O Worker, the
 * Worker transport's ring Worker) instead of the rank's own thread: Deno's built-in WebGPU
 * blocks that thread for as long as it waits on the GPU, and a ring stalls on every member
 * whose thread is blocked. Both ends of the hand-over live here: {@linkcode OffloadedRings} on
 * the rank thread, {@linkcode serveRing} on the helper.
 * @module
 */
import type { CommCounters } from "./communicator.ts";
import { type RingJob, runRingJob } from "./ring.ts";
import type { Mailbox, RingOutcome, Tag } from "./transport.ts";

/** Rank thread → helper: run `job` in place on `work` (transferred). */
export interface RingRequest {
  t: "ring";
  id: number;
  job: RingJob;
  work: Float32Array;
}

/** Helper → rank thread: the result (transferred back) and its traffic, or why it failed. */
export type RingReply =
  | { t: "ring-done"; id: number; work: Float32Array; traffic: CommCounters }
  | { t: "ring-failed"; id: number; message: string };

/** Rank side: the rings handed to the helper, until their replies come. */
export class OffloadedRings {
  #pending = new Map<number, PromiseWithResolvers<RingOutcome>>();
  #next = 0;

  /** Posts `job` to the helper through `post` (which must transfer `work`); resolves on the reply. */
  start(
    job: RingJob,
    work: Float32Array,
    post: (request: RingRequest) => void,
  ): Promise<RingOutcome> {
    const id = this.#next++;
    const pending = Promise.withResolvers<RingOutcome>();
    this.#pending.set(id, pending);
    post({ t: "ring", id, job, work });
    return pending.promise;
  }

  /** Settles the ring a reply is for. */
  settle(reply: RingReply): void {
    const pending = this.#pending.get(reply.id);
    this.#pending.delete(reply.id);
    if (reply.t === "ring-done") pending?.resolve({ work: reply.work, traffic: reply.traffic });
    else pending?.reject(new Error(reply.message));
  }

  /** Fails every ring still running (the helper died, or another rank failed). */
  fail(error: Error): void {
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }
}

/** The buffers to transfer with a post of `work`: its own buffer unless shared. */
export function transferOf(work: Float32Array): ArrayBuffer[] {
  return work.buffer instanceof SharedArrayBuffer ? [] : [work.buffer as ArrayBuffer];
}

/**
 * Helper side: runs `request` with messages sent through `send` (which must not keep a view
 * of its argument: the ring writes to the buffer again) and received from `mailbox` (fed by
 * the helper's own connections with every ring-tagged message), then posts the reply.
 */
export async function serveRing(
  request: RingRequest,
  send: (dst: number, tag: Tag, data: Float32Array) => void,
  mailbox: Mailbox,
  reply: (reply: RingReply, transfer: ArrayBuffer[]) => void,
): Promise<void> {
  const { id, job, work } = request;
  const traffic: CommCounters = {
    messagesSent: 0,
    bytesSent: 0,
    messagesReceived: 0,
    bytesReceived: 0,
    waitMs: 0,
  };
  try {
    await runRingJob(job, work, {
      send: (dst, tag, data) => {
        traffic.messagesSent++;
        traffic.bytesSent += data.byteLength;
        send(dst, tag, data);
      },
      recv: async (src, tag, timeoutMs) => {
        const start = performance.now();
        const data = await mailbox.receive(src, tag, timeoutMs);
        traffic.waitMs += performance.now() - start;
        traffic.messagesReceived++;
        traffic.bytesReceived += data.byteLength;
        return data;
      },
    });
    reply({ t: "ring-done", id, work, traffic }, transferOf(work));
  } catch (e) {
    reply({ t: "ring-failed", id, message: (e as Error).message }, []);
  }
}
