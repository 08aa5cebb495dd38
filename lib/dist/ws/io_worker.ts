/**
 * The WebSocket I/O of one rank, run in a dedicated Worker. Why a Worker: Deno's built-in
 * WebGPU blocks its JS thread for as long as it waits for the GPU, and socket writes and reads
 * only progress when the event loop runs. On the rank's own thread a rank waiting on its GPU
 * would therefore stall every peer waiting for its state, and frames from peers would sit
 * unread. Here sockets keep flowing whatever the rank thread does; the rank thread and this
 * Worker exchange payloads by transfer. Ring collectives run here too (`runRing`), so that a
 * gradient reduction keeps moving through a rank whose thread is blocked.
 *
 * Data flows one way per socket, from the accepting (server) side to the dialing (client)
 * side, so that client frames (which RFC 6455 requires to be masked, a copy) carry only the
 * handshake. Every rank dials every other rank, and the socket rank r dialed to rank p carries
 * p's messages to r. (The one-way design began with Deno's WebSocket client, which lacks
 * TCP_NODELAY; tcp_websocket.ts sets it on both ends.)
 *
 * Setup: rank 0 listens on the master address; every other rank listens on its own port,
 * registers with rank 0 (that socket carries rank 0's messages to it) and receives the table
 * of addresses; then every rank dials every peer it has no socket from yet. Every connection
 * is authenticated (handshake.ts). Data: frames (frame.ts), sent in order from a queue per
 * peer while the socket's `bufferedAmount` is below a high-water mark (`send()` never blocks).
 * @module
 */
/// <reference lib="deno.worker" />
import { isRingTag } from "../ring.ts";
import { type RingRequest, serveRing } from "../ring_offload.ts";
import { Mailbox, type Tag } from "../transport.ts";
import { decodeHeader, encodeFrameParts, partCount, Reassembly, runIdHash } from "./frame.ts";
import { clientHandshake, type HelloInfo, type RunIdentity, serverHandshake } from "./handshake.ts";
import { connectWithRetry, type SocketMessage, SocketReader } from "./socket_reader.ts";
import { acceptWebSocket } from "./tcp_websocket.ts";
import type { IoConfig, IoReply, IoRequest } from "./io_protocol.ts";

/** Close code for a link that broke the frame protocol (application range 4000–4999). */
const PROTOCOL_ERROR_CODE = 4002;
/** Address of a rank that has not registered yet. */
const UNKNOWN = "address not yet known";

interface Outgoing {
  tag: Tag;
  bytes: Uint8Array;
  next: number;
  parts: number;
}

/** One socket to a peer: "in" (dialed here, the peer sends on it) or "out" (accepted here). */
interface Link {
  peer: number;
  role: "in" | "out";
  reader: SocketReader;
  queue: Outgoing[];
  reassembly: Reassembly;
  pumpScheduled: boolean;
}

function post(reply: IoReply, transfer: Transferable[] = []): void {
  self.postMessage(reply, transfer);
}

class IoNode {
  readonly id: RunIdentity & { rank: number };
  readonly runHash: number;
  readonly deadline: number;
  /** Sockets this rank dialed: messages from the peer arrive here. */
  readonly inbound = new Map<number, Link>();
  /** Sockets this rank accepted: messages to the peer leave here. */
  readonly outbound = new Map<number, Link>();
  /** ws:// address of every rank, once known. */
  readonly addresses: string[];
  readonly rejections: string[] = [];
  registrations = new Map<number, { reader: SocketReader; address: string }>();
  /** Messages of ring collectives, which run here (`runRing`) and never reach the rank thread. */
  readonly ringMailbox: Mailbox;
  listener: Deno.TcpListener | undefined;
  closing = false;
  #changed: (() => void) | undefined;

  constructor(readonly config: IoConfig) {
    this.id = { runId: config.runId, world: config.world, token: config.token, rank: config.rank };
    this.runHash = runIdHash(config.runId);
    this.deadline = performance.now() + config.connectTimeoutMs;
    this.addresses = Array.from({ length: config.world }, () => UNKNOWN);
    this.addresses[0] = `ws://${config.master}`;
    this.ringMailbox = new Mailbox(config.rank, (r) => this.addresses[r]);
  }

  get left(): number {
    return Math.max(1, this.deadline - performance.now());
  }

  async start(): Promise<void> {
    const { rank, master, host } = this.config;
    const [masterHost, masterPort] = splitAddress(master);
    this.listener = Deno.listen({
      hostname: rank === 0 ? masterHost : host,
      port: rank === 0 ? masterPort : this.config.port,
    });
    const addr = this.listener.addr;
    this.#acceptAll(this.listener);
    const myAddress = `${rank === 0 ? masterHost : host}:${addr.port}`;
    this.addresses[rank] = `ws://${myAddress}`;
    if (rank === 0) await this.#rendezvousAsMaster();
    else await this.#rendezvousAsWorker(myAddress);
    await this.#until(() => this.outbound.size === this.config.world - 1, () => {
      const missing = this.#missing((r) => !this.outbound.has(r));
      return `rank(s) ${missing} did not connect within ${this.config.connectTimeoutMs} ms`;
    });
    post({ t: "ready", addresses: this.addresses });
  }

  async #rendezvousAsMaster(): Promise<void> {
    const { world, connectTimeoutMs } = this.config;
    await this.#until(() => this.registrations.size === world - 1, () => {
      const missing = this.#missing((r) => r > 0 && !this.registrations.has(r));
      return `rank(s) ${missing} did not register within ${connectTimeoutMs} ms`;
    });
    for (const [r, { address }] of this.registrations) this.addresses[r] = `ws://${address}`;
    const table = JSON.stringify({ t: "peers", addresses: this.addresses });
    for (const [r, { reader }] of this.registrations) {
      reader.socket.send(table);
      this.#link(r, reader, "out");
    }
    await this.#dialPeers();
  }

  /** Dials every peer this rank has no inbound socket from. */
  async #dialPeers(): Promise<void> {
    const { rank, world } = this.config;
    const peers = Array.from({ length: world }, (_, p) => p)
      .filter((p) => p !== rank && !this.inbound.has(p));
    await Promise.all(peers.map(async (p) => {
      this.#link(p, await this.#connect(p, { rank, purpose: "peer" }), "in");
    }));
  }

  async #rendezvousAsWorker(myAddress: string): Promise<void> {
    const { rank } = this.config;
    const reader = await this.#connect(0, { rank, purpose: "register", address: myAddress });
    const message = await reader.next(this.left, "the peer table from rank 0").catch((e) => {
      throw new Error(`rank 0 (master, ${this.addresses[0]}) sent no peer table: ${e.message}`);
    });
    const table = JSON.parse(message as string) as { t: string; addresses: string[] };
    if (table.t !== "peers" || table.addresses?.length !== this.config.world) {
      throw new Error(`rank 0 (master, ${this.addresses[0]}) sent a malformed peer table`);
    }
    table.addresses.forEach((a, r) => this.addresses[r] = a);
    this.#link(0, reader, "in");
    await this.#dialPeers();
  }

  async #connect(peer: number, info: HelloInfo): Promise<SocketReader> {
    const url = `${this.addresses[peer]}/lasp`;
    const who = `rank ${peer}${peer === 0 ? " (master)" : ""} at ${this.addresses[peer]}`;
    let reader: SocketReader;
    try {
      reader = await connectWithRetry(url, this.deadline);
    } catch (e) {
      throw new Error(
        `could not reach ${who} within ${this.config.connectTimeoutMs} ms: ${(e as Error).message}`,
      );
    }
    try {
      await clientHandshake(reader, this.id, info, peer, this.left);
    } catch (e) {
      throw new Error(`${who} ${(e as Error).message}`);
    }
    return reader;
  }

  async #acceptAll(listener: Deno.TcpListener): Promise<void> {
    try {
      for await (const conn of listener) this.#accept(conn);
    } catch { /* the listener was closed */ }
  }

  async #accept(conn: Deno.TcpConn): Promise<void> {
    try {
      const socket = await acceptWebSocket(conn, {
        refusal: "LASP rank: WebSocket only",
        timeoutMs: this.left,
      });
      const reader = new SocketReader(socket);
      const hello = await serverHandshake(reader, this.id, this.left, (h) => this.#admit(h));
      if (hello.purpose === "register") {
        this.registrations.set(hello.rank, { reader, address: hello.address! });
        this.#changed?.();
      } else this.#link(hello.rank, reader, "out");
    } catch (e) {
      this.rejections.push((e as Error).message);
    }
  }

  /** Who may connect: registrations at rank 0, then every other rank once. */
  #admit(hello: HelloInfo): string | undefined {
    const me = this.config.rank;
    if (this.closing) return "this rank is shutting down";
    if (hello.purpose === "register") {
      if (me !== 0) return `rank ${me} is not the master`;
      if (typeof hello.address !== "string") return "registration without an address";
      if (this.registrations.has(hello.rank) || hello.rank === 0) {
        return `rank ${hello.rank} is already registered`;
      }
      return undefined;
    }
    if (hello.rank === me) return `rank ${me} cannot connect to itself`;
    if (this.outbound.has(hello.rank)) return `rank ${hello.rank} is already connected`;
    return undefined;
  }

  #link(peer: number, reader: SocketReader, role: "in" | "out"): void {
    const link: Link = {
      peer,
      role,
      reader,
      queue: [],
      reassembly: new Reassembly(),
      pumpScheduled: false,
    };
    (role === "in" ? this.inbound : this.outbound).set(peer, link);
    reader.onClose = (code, reason) => {
      if (this.closing) return;
      // A peer that is done closes both its sockets; its last messages may still be on their
      // way on the other one (inbound here), so a normal close of the socket that carries
      // nothing to us is no failure. Sends to the peer from now on fail on their own.
      if (role === "out" && code === 1000) return;
      this.#peerFailed(
        peer,
        `connection to rank ${peer} (${this.addresses[peer]}) closed (code ${code}${
          reason ? `: ${reason}` : ""
        })`,
      );
    };
    if (reader.closed) reader.onClose(reader.closed.code, reader.closed.reason);
    reader.handle((message) => this.#receive(link, message));
    this.#changed?.();
  }

  #receive(link: Link, message: SocketMessage): void {
    try {
      if (typeof message === "string") {
        throw new Error("unexpected text message after the handshake");
      }
      if (link.role === "out") {
        throw new Error("data frame on a socket that carries data the other way");
      }
      const header = decodeHeader(message, this.runHash);
      if (header.src !== link.peer || header.dst !== this.config.rank) {
        throw new Error(
          `frame from rank ${header.src} to rank ${header.dst} arrived on the link ${link.peer}→${this.config.rank}`,
        );
      }
      const done = link.reassembly.add(header, message);
      if (!done) return;
      const { data } = done;
      if (isRingTag(header.tag)) return this.ringMailbox.deliver(link.peer, header.tag, data);
      post(
        {
          t: "recv",
          src: link.peer,
          tag: header.tag,
          buffer: data.buffer as ArrayBuffer,
          byteOffset: data.byteOffset,
          length: data.length,
        },
        [data.buffer as ArrayBuffer],
      );
    } catch (e) {
      const reason = `rejected a frame from rank ${link.peer} (${this.addresses[link.peer]}): ${
        (e as Error).message
      }`;
      this.#peerFailed(link.peer, reason);
      link.reader.socket.close(PROTOCOL_ERROR_CODE, reason.slice(0, 120));
    }
  }

  send(dsts: readonly number[], tag: Tag, data: Float32Array): void {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const parts = partCount(bytes.byteLength, this.config.partBytes);
    for (const dst of dsts) {
      const link = this.outbound.get(dst);
      if (!link || link.reader.closed) {
        this.#peerFailed(dst, `cannot send to rank ${dst} (${this.addresses[dst]}): not connected`);
        continue;
      }
      link.queue.push({ tag, bytes, next: 0, parts });
      this.#pump(link);
    }
  }

  /** Tells the rank thread that the link to `peer` failed, and fails the rings waiting on it. */
  #peerFailed(peer: number, message: string): void {
    post({ t: "error", peer, message });
    this.ringMailbox.fail(new Error(`Rank ${this.config.rank}: ${message}`), peer);
  }

  /** Runs a ring collective here and posts the result back. */
  runRing(request: RingRequest): Promise<void> {
    // a copy per message: the ring writes to the work buffer again while frames may wait
    const send = (dst: number, tag: Tag, data: Float32Array) => this.send([dst], tag, data.slice());
    return serveRing(request, send, this.ringMailbox, post);
  }

  /** Sends queued frames while the socket's buffer is below the high-water mark. */
  #pump(link: Link): void {
    const socket = link.reader.socket;
    while (link.queue.length > 0 && socket.bufferedAmount < this.config.highWaterBytes) {
      if (link.reader.closed) return;
      const out = link.queue[0];
      const header = {
        runHash: this.runHash,
        src: this.config.rank,
        dst: link.peer,
        tag: out.tag,
        shape: [out.bytes.byteLength / 4],
      };
      socket.send(encodeFrameParts(header, out.bytes, out.next++, this.config.partBytes));
      if (out.next === out.parts) link.queue.shift();
    }
    if (link.queue.length > 0 && !link.pumpScheduled) {
      link.pumpScheduled = true;
      setTimeout(() => {
        link.pumpScheduled = false;
        this.#pump(link);
      }, 1);
    }
  }

  /** Waits for queued frames to leave, then closes every socket and the server. */
  async close(): Promise<void> {
    const flushDeadline = performance.now() + this.config.connectTimeoutMs;
    const busy = () =>
      [...this.outbound.values()].some((l) =>
        !l.reader.closed && (l.queue.length > 0 || l.reader.socket.bufferedAmount > 0)
      );
    while (busy() && performance.now() < flushDeadline) await new Promise((r) => setTimeout(r, 2));
    this.closing = true;
    const links = [...this.inbound.values(), ...this.outbound.values()];
    for (const link of links) link.reader.socket.close(1000, "done");
    this.listener?.close();
    // the close frames must leave before this process may exit
    const written = Promise.all(links.map((l) => l.reader.socket.drained()));
    await Promise.race([written, new Promise((r) => setTimeout(r, 1000))]);
    post({ t: "closed" });
  }

  async #until(done: () => boolean, failure: () => string): Promise<void> {
    while (!done()) {
      const left = this.deadline - performance.now();
      if (left <= 0) {
        const rejected = this.rejections.length > 0
          ? `; rejected: ${this.rejections.join("; ")}`
          : "";
        throw new Error(failure() + rejected);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#changed = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#changed = undefined;
    }
  }

  #missing(isMissing: (rank: number) => boolean): string {
    const out: string[] = [];
    for (let r = 0; r < this.config.world; r++) {
      if (r === this.config.rank || !isMissing(r)) continue;
      out.push(this.addresses[r] === UNKNOWN ? `${r}` : `${r} (${this.addresses[r]})`);
    }
    return out.join(", ");
  }
}

/** "host:port" → [host, port]; IPv6 hosts in brackets. */
function splitAddress(address: string): [string, number] {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  if (!m) throw new Error(`Invalid address "${address}": expected host:port`);
  return [m[1], Number(m[2])];
}

let node: IoNode | undefined;
self.onmessage = (e: MessageEvent<IoRequest>) => {
  const request = e.data;
  if (request.t === "start") {
    node = new IoNode(request.config);
    node.start().catch((err) => {
      post({
        t: "error",
        fatal: true,
        message: `Rank ${request.config.rank}: ${(err as Error).message}`,
      });
    });
  } else if (request.t === "send") node!.send(request.dsts, request.tag, request.data);
  else if (request.t === "ring") node!.runRing(request);
  else if (request.t === "close") node?.close();
};
