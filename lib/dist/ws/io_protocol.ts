/**
 * Messages between a rank's thread (ws_transport.ts) and its WebSocket I/O Worker
 * (io_worker.ts).
 * @module
 */
import type { RingReply, RingRequest } from "../ring_offload.ts";
import type { Tag } from "../transport.ts";

/** Settings of one rank's WebSocket I/O. */
export interface IoConfig {
  rank: number;
  world: number;
  /** Names this run; frames and handshakes of another run are rejected. */
  runId: string;
  /** Shared secret every rank of the run knows. */
  token: string;
  /** "host:port" where rank 0 listens and the others register. */
  master: string;
  /** This rank's address to listen on and to tell the others (ranks > 0). */
  host: string;
  /** This rank's port (ranks > 0); 0 picks a free one. */
  port: number;
  /** Limit for rendezvous and connections, in milliseconds. */
  connectTimeoutMs: number;
  /** Payload bytes per frame. */
  partBytes: number;
  /** Frames are queued while a socket's `bufferedAmount` is at least this. */
  highWaterBytes: number;
}

/** Rank thread → I/O Worker. */
export type IoRequest =
  | { t: "start"; config: IoConfig }
  | { t: "send"; dsts: readonly number[]; tag: Tag; data: Float32Array }
  /** Run a ring collective in the I/O Worker. */
  | RingRequest
  | { t: "close" };

/** I/O Worker → rank thread. */
export type IoReply =
  | { t: "ready"; addresses: string[] }
  | {
    t: "recv";
    src: number;
    tag: Tag;
    buffer: ArrayBuffer;
    byteOffset: number;
    length: number;
  }
  /** `peer`: the failure concerns that peer only; `fatal`: setup failed. */
  | { t: "error"; message: string; peer?: number; fatal?: boolean }
  | { t: "closed" }
  /** A ring collective finished or failed. */
  | RingReply;
