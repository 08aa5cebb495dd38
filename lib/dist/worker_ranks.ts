/**
 * Launching a run as Workers of this process: one Worker per rank, each running a module's
 * rank function with its own {@linkcode Communicator} (and, typically, its own GPU device).
 * Ranks talk over MessagePorts (`transport: "worker"`, the default) or over WebSockets on
 * 127.0.0.1 (`"websocket"`: the network code path without separate processes).
 * @module
 */
import type { Communicator } from "./communicator.ts";
import type { WebSocketTransportOptions } from "./ws/ws_transport.ts";
import type { RankInit, RankReply } from "./worker_rank_entry.ts";

/** What a rank module exports: called once per rank; the result must be structured-cloneable. */
export type RankFunction<A = unknown, R = unknown> = (
  comm: Communicator,
  args: A,
) => R | Promise<R>;

/**
 * A rank's whole life once connected, for Worker and process ranks alike: imports `module`,
 * calls its rank function `exportName` with `comm` and `args`, closes `comm` and returns the
 * result.
 */
export async function runRankModule(
  comm: Communicator,
  module: string,
  exportName: string,
  args: unknown,
): Promise<unknown> {
  const fn = (await import(module))[exportName];
  if (typeof fn !== "function") {
    throw new Error(`Rank module ${module} has no exported function "${exportName}"`);
  }
  const value = await (fn as RankFunction)(comm, args);
  await comm.close();
  return value;
}

/** What every way of spawning local ranks takes (Workers here, processes in lib/launch). */
export interface RankSpawnOptions<A> {
  /** Number of ranks W. */
  world: number;
  /** Absolute URL of the module exporting the rank function `(comm, args) => result`. */
  module: string | URL;
  /** Name of the export. Default "rank". */
  exportName?: string;
  /** Passed to every rank (Workers: structured clone; processes: JSON, typed arrays exact). */
  args?: A;
  /** Sequence-parallel group size. Default: `world`. */
  sp?: number;
  /** Connection and receive timeout of the communicators, ms. Default 60 000. */
  timeoutMs?: number;
}

/** Options of {@linkcode spawnWorkerRanks}. */
export interface SpawnWorkerRanksOptions<A> extends RankSpawnOptions<A> {
  /** How ranks talk. Default "worker". */
  transport?: "worker" | "websocket";
  /** WebSocket settings (rank, world, master, token and run id are filled in). */
  websocket?: Partial<WebSocketTransportOptions>;
}

/** Picks a free TCP port on 127.0.0.1 (for a local master address). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

const ABORTED = "aborted because rank";

/** `world` × `world` MessagePorts: [i][j] talks to [j][i]; [i][i] is undefined. */
function pairwiseChannels(world: number): (MessagePort | undefined)[][] {
  const ports: (MessagePort | undefined)[][] = Array.from({ length: world }, () => []);
  for (let i = 0; i < world; i++) {
    for (let j = i + 1; j < world; j++) {
      const channel = new MessageChannel();
      ports[i][j] = channel.port1;
      ports[j][i] = channel.port2;
    }
  }
  return ports;
}

/** Checks a spawn's world size and returns its rank module as an absolute URL string. */
export function rankModuleHref(world: number, module: string | URL): string {
  if (!Number.isInteger(world) || world < 1) {
    throw new Error(`Invalid world size ${world}: must be a positive integer`);
  }
  try {
    return new URL(module).href;
  } catch {
    throw new Error(`Invalid rank module "${module}": must be an absolute URL`);
  }
}

/**
 * Runs the rank function of `module` on `world` Worker ranks and returns their results in
 * rank order. When a rank fails, the others are aborted (their pending receives fail at once)
 * and the returned promise rejects naming the failed rank(s) and their errors.
 */
export async function spawnWorkerRanks<R = unknown, A = unknown>(
  options: SpawnWorkerRanksOptions<A>,
): Promise<R[]> {
  const { world } = options;
  const module = rankModuleHref(world, options.module);
  const kind = options.transport ?? "worker";
  if (kind !== "worker" && kind !== "websocket") {
    throw new Error(`Unknown transport "${kind}": must be "worker" or "websocket"`);
  }
  // pairwise channels between the ranks, and between their ring Workers (worker_transport.ts)
  const ports = kind === "worker" ? pairwiseChannels(world) : [];
  const ringPorts = kind === "worker" ? pairwiseChannels(world) : [];
  const websocket: Partial<WebSocketTransportOptions> = {
    master: `127.0.0.1:${freePort()}`,
    token: crypto.randomUUID(),
    runId: `local-${crypto.randomUUID()}`,
    ...options.websocket,
  };
  const workers = Array.from(
    { length: world },
    (_, rank) =>
      new Worker(new URL("./worker_rank_entry.ts", import.meta.url), {
        type: "module",
        name: String(rank),
      }),
  );
  const settled = workers.map((worker, rank) =>
    new Promise<R>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<RankReply>) => {
        if (e.data.t === "result") resolve(e.data.value as R);
        else reject(new Error(e.data.message));
      };
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`Rank ${rank}: uncaught error: ${e.message}`));
      };
      const own = ports[rank] ?? [], ownRing = ringPorts[rank] ?? [];
      const init: RankInit = {
        t: "init",
        rank,
        world,
        module,
        exportName: options.exportName ?? "rank",
        args: options.args,
        sp: options.sp,
        timeoutMs: options.timeoutMs,
        transport: kind,
        ports: own,
        ringPorts: ownRing,
        websocket,
      };
      worker.postMessage(init, [...own, ...ownRing].filter((p) => p !== undefined));
    })
  );
  settled.forEach((p, rank) =>
    p.catch(() => {
      for (const w of workers) w.postMessage({ t: "abort", message: `${ABORTED} ${rank} failed` });
    })
  );
  const outcomes = await Promise.allSettled(settled);
  for (const w of workers) w.terminate();
  const failures = outcomes.flatMap((o) =>
    o.status === "rejected" ? [(o.reason as Error).message] : []
  );
  if (failures.length > 0) {
    const primary = failures.filter((m) => !m.includes(ABORTED));
    const shown = primary.length > 0 ? primary : failures;
    throw new Error(`${failures.length} of ${world} ranks failed: ${shown.join(" | ")}`);
  }
  return outcomes.map((o) => (o as PromiseFulfilledResult<R>).value);
}
