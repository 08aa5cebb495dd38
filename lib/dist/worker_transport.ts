/**
 * The embedded transport: ranks are Deno Workers of one process, wired pairwise by
 * MessageChannels. A message is posted straight into the peer's port queue, so a sender whose
 * thread then blocks on the GPU (the built-in WebGPU blocks while it waits) has already
 * delivered it: no I/O thread is needed here. Payloads move without needless copies: a buffer
 * the caller gives away is transferred, one message to several peers is copied once into a
 * SharedArrayBuffer that all of them read, and a SharedArrayBuffer payload is shared as is.
 * @module
 */
import { Mailbox, type RingOutcome, type Tag, type Transport } from "./transport.ts";
import type { RingJob } from "./ring.ts";
import { OffloadedRings, type RingReply, transferOf } from "./ring_offload.ts";
import type { RingWorkerRequest } from "./ring_worker.ts";

/** How a Worker rank's peers are named in errors (by its transport and its ring Worker). */
export function workerPeerName(rank: number): string {
  return `worker rank ${rank} of this process`;
}

/** Message on a rank-to-rank port. */
interface PortMessage {
  tag: Tag;
  data: Float32Array;
}

/** Transport between Worker ranks over MessagePorts (one per peer). */
export class WorkerTransport implements Transport {
  #ports: readonly (MessagePort | undefined)[];
  #mailbox: Mailbox;
  #closed = false;
  #ringWorker: Worker | undefined;
  #rings = new OffloadedRings();
  /**
   * Present when the transport has ring ports: runs a ring collective on this rank's ring
   * Worker, which keeps moving while this thread is blocked (the built-in WebGPU blocks it for
   * as long as it waits on the GPU). `work` is transferred there and back.
   */
  readonly runRing?: (job: RingJob, work: Float32Array) => Promise<RingOutcome>;

  /**
   * `ports[peer]` is the channel to `peer` (undefined at this rank's own index). With
   * `ringPorts` (a second set of channels, like `ports`), ring collectives run on a Worker of
   * this rank that owns them (see {@linkcode runRing}); without, on this thread.
   */
  constructor(
    readonly rank: number,
    ports: readonly (MessagePort | undefined)[],
    ringPorts?: readonly (MessagePort | undefined)[],
  ) {
    this.#ports = ports;
    this.#mailbox = new Mailbox(rank, (r) => this.describePeer(r));
    ports.forEach((port, peer) => {
      if (!port) return;
      port.onmessage = (e: MessageEvent<PortMessage>) =>
        this.#mailbox.deliver(peer, e.data.tag, e.data.data);
    });
    if (ringPorts?.some((p) => p !== undefined)) {
      const worker = new Worker(new URL("./ring_worker.ts", import.meta.url), { type: "module" });
      worker.onmessage = (e: MessageEvent<RingReply>) => this.#rings.settle(e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        this.#rings.fail(new Error(`Rank ${rank}: ring worker failed: ${e.message}`));
      };
      const own = [...ringPorts];
      this.#ringWorker = worker;
      this.#postRing({ t: "init", rank, ports: own }, own.filter((p) => p !== undefined));
      this.runRing = (job, work) => {
        if (this.#closed) throw new Error(`Rank ${rank}: ring after the transport was closed`);
        return this.#rings.start(job, work, (r) => this.#postRing(r, transferOf(work)));
      };
    }
  }

  /** Number of ranks (one port slot per rank). */
  get world(): number {
    return this.#ports.length;
  }

  send(dsts: readonly number[], tag: Tag, data: Float32Array, transfer: boolean): void {
    if (this.#closed) throw new Error(`Rank ${this.rank}: send after the transport was closed`);
    let payload = data;
    let moved: ArrayBuffer[] = [];
    if (data.buffer instanceof SharedArrayBuffer) {
      // already shared: receivers read the same memory
    } else if (dsts.length > 1) {
      payload = new Float32Array(new SharedArrayBuffer(data.byteLength));
      payload.set(data);
    } else if (transfer && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) {
      moved = [data.buffer as ArrayBuffer];
    } else {
      payload = data.slice();
      moved = [payload.buffer as ArrayBuffer];
    }
    for (const dst of dsts) {
      const port = this.#ports[dst];
      if (!port) throw new Error(`Rank ${this.rank} has no channel to rank ${dst}`);
      port.postMessage({ tag, data: payload } satisfies PortMessage, moved);
    }
  }

  recv(src: number, tag: Tag, timeoutMs: number): Promise<Float32Array> {
    return this.#mailbox.receive(src, tag, timeoutMs);
  }

  describePeer(rank: number): string {
    return workerPeerName(rank);
  }

  /** Fails every pending and future receive (another rank failed: do not wait for it). */
  abort(error: Error): void {
    this.#mailbox.fail(error);
    this.#rings.fail(error);
    this.#postRing({ t: "abort", message: error.message });
  }

  #postRing(request: RingWorkerRequest, transfer: Transferable[] = []): void {
    this.#ringWorker?.postMessage(request, transfer);
  }

  /**
   * Stops sending. The ports stay open: messages already posted must still reach peers that
   * finish later; the launcher ends the Workers when every rank is done.
   */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}
