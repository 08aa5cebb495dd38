/**
 * The WebSocket transport, rank side: payloads go to and come from this rank's I/O Worker
 * (io_worker.ts explains why the sockets live there) by transfer; receives are matched and
 * timed out here.
 * @module
 */
import { Mailbox, type RingOutcome, type Tag, type Transport } from "../transport.ts";
import type { RingJob } from "../ring.ts";
import { OffloadedRings, transferOf } from "../ring_offload.ts";
import { DEFAULT_PART_BYTES, MAX_PART_BYTES } from "./frame.ts";
import type { IoConfig, IoReply, IoRequest } from "./io_protocol.ts";

/** Options of {@linkcode connectWebSocketTransport}. */
export interface WebSocketTransportOptions {
  /** This rank, in [0, world). */
  rank: number;
  /** Number of ranks. */
  world: number;
  /** Names this run; ranks of another run are rejected. */
  runId: string;
  /** Shared secret of the run (never sent: peers prove it by HMAC). */
  token: string;
  /** "host:port" of rank 0 (rank 0 listens there). */
  master: string;
  /** Address this rank listens on and announces (ranks > 0). Default "127.0.0.1". */
  host?: string;
  /** Port of a rank > 0; default 0 (a free port). */
  port?: number;
  /** Limit for rendezvous and connection setup, ms. Default 60 000. */
  connectTimeoutMs?: number;
  /** Payload bytes per frame (multiple of 4, below 16 MiB). Default 8 MiB. */
  partBytes?: number;
  /** Socket buffer level above which frames wait. Default 16 MiB. */
  highWaterBytes?: number;
}

function checkOptions(o: WebSocketTransportOptions): IoConfig {
  if (!Number.isInteger(o.world) || o.world < 1) {
    throw new Error(`Invalid world size ${o.world}: must be a positive integer`);
  }
  if (!Number.isInteger(o.rank) || o.rank < 0 || o.rank >= o.world) {
    throw new Error(`Invalid rank ${o.rank}: must be an integer in [0, ${o.world})`);
  }
  if (!o.token) throw new Error("Invalid token: the run needs a non-empty shared secret");
  if (!o.runId) throw new Error("Invalid run id: must be a non-empty string");
  const partBytes = o.partBytes ?? DEFAULT_PART_BYTES;
  if (
    !Number.isInteger(partBytes) || partBytes < 4 || partBytes % 4 || partBytes > MAX_PART_BYTES
  ) {
    throw new Error(
      `Invalid partBytes ${partBytes}: must be a multiple of 4 in [4, ${MAX_PART_BYTES}] (frames stay below 16 MiB)`,
    );
  }
  if (!/^\[?[^\]]+\]?:\d+$/.test(o.master)) {
    throw new Error(`Invalid master address "${o.master}": expected host:port`);
  }
  return {
    rank: o.rank,
    world: o.world,
    runId: o.runId,
    token: o.token,
    master: o.master,
    host: o.host ?? "127.0.0.1",
    port: o.port ?? 0,
    connectTimeoutMs: o.connectTimeoutMs ?? 60_000,
    partBytes,
    highWaterBytes: o.highWaterBytes ?? 16 << 20,
  };
}

/** Connects this rank to the run (rendezvous through rank 0) and returns its transport. */
export async function connectWebSocketTransport(
  options: WebSocketTransportOptions,
): Promise<WebSocketTransport> {
  const transport = new WebSocketTransport(options);
  await transport.ready;
  return transport;
}

/** Transport over WebSockets; create it with {@linkcode connectWebSocketTransport}. */
export class WebSocketTransport implements Transport {
  /** This rank. */
  readonly rank: number;
  /** Number of ranks. */
  readonly world: number;
  /** Settles when every peer is connected (or setup failed). */
  readonly ready: Promise<void>;
  #worker: Worker;
  #mailbox: Mailbox;
  #addresses: string[];
  #closed: PromiseWithResolvers<void> | undefined;
  #sendClosed = false;
  /** Ring collectives running in the I/O Worker. */
  #rings = new OffloadedRings();

  #config: IoConfig;

  /** Starts this rank's I/O Worker and the rendezvous; await `ready` before use. */
  constructor(options: WebSocketTransportOptions) {
    const config = this.#config = checkOptions(options);
    const worker = new Worker(new URL("./io_worker.ts", import.meta.url), { type: "module" });
    this.rank = config.rank;
    this.world = config.world;
    this.#worker = worker;
    this.#addresses = Array.from({ length: config.world }, () => "address not yet known");
    this.#addresses[0] = `ws://${config.master}`;
    this.#mailbox = new Mailbox(config.rank, (r) => this.describePeer(r));
    const ready = Promise.withResolvers<void>();
    this.ready = ready.promise;
    let isReady = false;
    worker.onmessage = (e: MessageEvent<IoReply>) => {
      const reply = e.data;
      if (reply.t === "recv") {
        const data = new Float32Array(reply.buffer, reply.byteOffset, reply.length);
        this.#mailbox.deliver(reply.src, reply.tag, data);
      } else if (reply.t === "ready") {
        this.#addresses = reply.addresses;
        isReady = true;
        ready.resolve();
      } else if (reply.t === "error") {
        const error = new Error(
          reply.fatal ? reply.message : `Rank ${this.rank}: ${reply.message}`,
        );
        if (!isReady) {
          worker.terminate();
          ready.reject(error);
        } else this.#mailbox.fail(error, reply.fatal ? undefined : reply.peer);
      } else if (reply.t === "ring-done" || reply.t === "ring-failed") {
        this.#rings.settle(reply);
      } else if (reply.t === "closed") this.#closed?.resolve();
    };
    worker.onerror = (e) => {
      e.preventDefault();
      const error = new Error(`Rank ${this.rank}: WebSocket I/O worker failed: ${e.message}`);
      if (!isReady) ready.reject(error);
      this.#mailbox.fail(error);
      this.#rings.fail(error);
      this.#closed?.resolve();
    };
    this.#post({ t: "start", config });
  }

  send(dsts: readonly number[], tag: Tag, data: Float32Array, transfer: boolean): void {
    if (this.#sendClosed) throw new Error(`Rank ${this.rank}: send after the transport was closed`);
    let payload = data;
    const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
    if (data.buffer instanceof SharedArrayBuffer) {
      // shared memory: the I/O worker reads it in place
    } else if (!(transfer && whole)) payload = data.slice();
    const moved = payload.buffer instanceof SharedArrayBuffer
      ? []
      : [payload.buffer as ArrayBuffer];
    this.#post({ t: "send", dsts, tag, data: payload }, moved);
  }

  recv(src: number, tag: Tag, timeoutMs: number): Promise<Float32Array> {
    return this.#mailbox.receive(src, tag, timeoutMs);
  }

  describePeer(rank: number): string {
    return this.#addresses[rank] ?? `rank ${rank}`;
  }

  /**
   * Runs the ring collective in the I/O Worker, which has the sockets: it keeps moving while
   * this thread is blocked (the built-in WebGPU blocks it for as long as it waits on the GPU),
   * so gradient reductions overlap GPU work. `work` is transferred there and back.
   */
  runRing(job: RingJob, work: Float32Array): Promise<RingOutcome> {
    if (this.#sendClosed) throw new Error(`Rank ${this.rank}: ring after the transport was closed`);
    return this.#rings.start(job, work, (request) => this.#post(request, transferOf(work)));
  }

  abort(error: Error): void {
    this.#mailbox.fail(error);
    this.#rings.fail(error);
  }

  /** Sends what is queued, closes the sockets and ends the I/O Worker. */
  async close(): Promise<void> {
    if (this.#closed) return this.#closed.promise;
    this.#sendClosed = true;
    this.#closed = Promise.withResolvers<void>();
    this.#post({ t: "close" });
    const timer = setTimeout(() => this.#closed!.resolve(), this.#config.connectTimeoutMs + 2000);
    await this.#closed.promise;
    clearTimeout(timer);
    this.#worker.terminate();
  }

  #post(request: IoRequest, transfer: Transferable[] = []): void {
    this.#worker.postMessage(request, transfer);
  }
}
