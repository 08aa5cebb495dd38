/**
 * The ring thread of a Worker rank (worker_transport.ts): runs that rank's ring collectives
 * over its own MessagePorts to the other ranks' ring threads (lib/dist/ring_offload.ts says
 * why they leave the rank's thread).
 * @module
 */
/// <reference lib="deno.worker" />
import { Mailbox, type Tag } from "./transport.ts";
import { type RingRequest, serveRing } from "./ring_offload.ts";
import { workerPeerName } from "./worker_transport.ts";

/** Rank thread → ring thread. */
export type RingWorkerRequest =
  | { t: "init"; rank: number; ports: (MessagePort | undefined)[] }
  | RingRequest
  | { t: "abort"; message: string };

/** A ring message between ring threads. */
interface RingPortMessage {
  tag: Tag;
  data: Float32Array;
}

let ports: (MessagePort | undefined)[] = [];
let mailbox: Mailbox | undefined;

function send(dst: number, tag: Tag, data: Float32Array): void {
  const copy = data.slice(); // the ring writes to its buffer again
  ports[dst]!.postMessage({ tag, data: copy } satisfies RingPortMessage, [copy.buffer]);
}

self.onmessage = (e: MessageEvent<RingWorkerRequest>) => {
  const request = e.data;
  if (request.t === "init") {
    ports = request.ports;
    const box = mailbox = new Mailbox(request.rank, workerPeerName);
    ports.forEach((port, peer) => {
      if (port) {
        port.onmessage = (m: MessageEvent<RingPortMessage>) =>
          box.deliver(peer, m.data.tag, m.data.data);
      }
    });
  } else if (request.t === "ring") {
    serveRing(request, send, mailbox!, (reply, transfer) => self.postMessage(reply, transfer));
  } else mailbox?.fail(new Error(request.message));
};
