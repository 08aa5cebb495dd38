/**
 * Main script of a Worker rank started by `spawnWorkerRanks`: builds the transport and
 * communicator, runs the rank function, posts its result or error.
 * @module
 */
/// <reference lib="deno.worker" />
import { Communicator } from "./communicator.ts";
import type { Transport } from "./transport.ts";
import { WorkerTransport } from "./worker_transport.ts";
import { runRankModule } from "./worker_ranks.ts";
import { connectWebSocketTransport, type WebSocketTransportOptions } from "./ws/ws_transport.ts";

/** Launcher → rank. */
export interface RankInit {
  t: "init";
  rank: number;
  world: number;
  module: string;
  exportName: string;
  args: unknown;
  sp?: number;
  timeoutMs?: number;
  transport: "worker" | "websocket";
  ports: (MessagePort | undefined)[];
  /** Channels of this rank's ring Worker to the other ranks' (see worker_transport.ts). */
  ringPorts: (MessagePort | undefined)[];
  websocket: Partial<WebSocketTransportOptions>;
}

/** Rank → launcher. */
export type RankReply = { t: "result"; value: unknown } | { t: "error"; message: string };

let transport: Transport | undefined;
let aborted: Error | undefined;

async function run(init: RankInit): Promise<unknown> {
  const { rank, world } = init;
  transport = init.transport === "worker"
    ? new WorkerTransport(
      rank,
      Array.from({ length: world }, (_, r) => init.ports[r]),
      Array.from({ length: world }, (_, r) => init.ringPorts[r]),
    )
    : await connectWebSocketTransport(
      { ...init.websocket, rank, world } as WebSocketTransportOptions,
    );
  if (aborted) transport.abort(aborted);
  const comm = new Communicator(transport, { sp: init.sp, timeoutMs: init.timeoutMs });
  return await runRankModule(comm, init.module, init.exportName, init.args);
}

self.onmessage = (e: MessageEvent<RankInit | { t: "abort"; message: string }>) => {
  const message = e.data;
  if (message.t === "abort") {
    aborted ??= new Error(`Rank ${self.name || "?"}: ${message.message}`);
    transport?.abort(aborted);
    return;
  }
  run(message).then(
    (value) => self.postMessage({ t: "result", value } satisfies RankReply),
    (err) => {
      const text = (err as Error).message ?? String(err);
      const named = text.startsWith(`Rank ${message.rank}`)
        ? text
        : `Rank ${message.rank}: ${text}`;
      self.postMessage({ t: "error", message: named } satisfies RankReply);
      transport?.close();
    },
  );
};
