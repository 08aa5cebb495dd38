/**
 * Ranks as separate `deno run` processes for tests: lib/launch/process_ranks.ts with the
 * built-in WebGPU implementation and small WebSocket frames (large messages go in many parts).
 */
import { spawnProcessRanks as spawn } from "../lib/launch/process_ranks.ts";

/** Options of {@linkcode spawnProcessRanks}. */
export interface ProcessRanksOptions {
  world: number;
  module: URL;
  exportName: string;
  args?: unknown;
  sp?: number;
  timeoutMs?: number;
}

/** Starts `world` rank processes and returns their results in rank order. */
export function spawnProcessRanks<R>(options: ProcessRanksOptions): Promise<R[]> {
  return spawn<R>({ ...options, env: { LASP_GPU: "deno" }, partBytes: 4096 });
}
