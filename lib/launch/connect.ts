/**
 * A rank's {@linkcode Communicator} from its launch environment (lib/launch/env.ts: our
 * launcher, torchrun, Slurm, Open MPI): WebSockets with a rendezvous at MASTER_ADDR:MASTER_PORT
 * (rank 0 listens there). The run's shared secret comes from `LASP_TOKEN` (and its name from
 * `LASP_RUN_ID`); a launcher that sets neither (plain torchrun or srun) gets a token derived
 * from the rendezvous address and world size, which only keeps apart runs that differ in them:
 * set `LASP_TOKEN` on any network that is not trusted.
 * @module
 */
import { Communicator } from "../dist/communicator.ts";
import { connectWebSocketTransport } from "../dist/ws/ws_transport.ts";
import { type LaunchEnv, launchEnvFrom } from "./env.ts";

/** Options of {@linkcode connectFromEnv}. */
export interface ConnectFromEnvOptions {
  /** Sequence-parallel group size. Default: the world size. */
  sp?: number;
  /** Receive and connection timeout, ms. Default 60 000. */
  timeoutMs?: number;
  /** Environment to read (default: this process's). */
  env?: Record<string, string | undefined>;
  /** Address this rank listens on for its peers (ranks > 0). Default: `LASP_HOST` or 127.0.0.1. */
  host?: string;
  /** Bytes per WebSocket frame of a large message (tests use small parts). Default: the transport's. */
  partBytes?: number;
}

/** The communicator of this process and where it stands in the run. */
export async function connectFromEnv(
  options: ConnectFromEnvOptions = {},
): Promise<{ comm: Communicator; launch: LaunchEnv }> {
  const env = options.env ?? Deno.env.toObject();
  const launch = launchEnvFrom(env);
  const timeoutMs = options.timeoutMs ?? 60_000;
  if (launch.worldSize === 1) {
    return { comm: Communicator.solo({ sp: options.sp, timeoutMs }), launch };
  }
  const master = `${launch.masterAddr}:${launch.masterPort}`;
  const derived = `lasp:${master}:${launch.worldSize}`;
  const transport = await connectWebSocketTransport({
    rank: launch.rank,
    world: launch.worldSize,
    master,
    token: env.LASP_TOKEN || derived,
    runId: env.LASP_RUN_ID || derived,
    host: options.host ?? (env.LASP_HOST || "127.0.0.1"),
    connectTimeoutMs: timeoutMs,
    partBytes: options.partBytes,
  });
  return { comm: new Communicator(transport, { sp: options.sp, timeoutMs }), launch };
}
