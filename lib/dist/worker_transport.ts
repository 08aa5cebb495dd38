/**
 * The embedded transport: ranks are Deno Workers of one process, wired pairwise by
 * MessageChannels. A message is posted straight into the peer's port queue, so a sender whose
 * thread then blocks on the GPU (the built-in WebGPU blocks while it waits) has already
 * delivered it: no I/O thread is needed here. Payloads move without needless copies: a buffer
 * the caller gives away is transferred, one message to several peers is copied once into a
 * SharedArrayBuffer that all of them read, and a SharedArrayBuffer payload is shared as is.
 * @module
 */
import { Mailbox, type Tag, type Transport } from "./transport.ts";

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

  /** `ports[peer]` is the channel to `peer` (undefined at this rank's own index). */
  constructor(readonly rank: number, ports: readonly (MessagePort | undefined)[]) {
    this.#ports = ports;
    this.#mailbox = new Mailbox(rank, (r) => this.describePeer(r));
    ports.forEach((port, peer) => {
      if (!port) return;
      port.onmessage = (e: MessageEvent<PortMessage>) =>
        this.#mailbox.deliver(peer, e.data.tag, e.data.data);
    });
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
    return `worker rank ${rank} of this process`;
  }

  /** Fails every pending and future receive (another rank failed: do not wait for it). */
  abort(error: Error): void {
    this.#mailbox.fail(error);
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
