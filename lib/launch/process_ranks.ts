/**
 * Local ranks as separate `deno run` processes (the counterpart of `spawnWorkerRanks` for
 * code that must own its process, e.g. Dawn, which hangs inside Workers): starts W ranks
 * with {@linkcode launch} (torchrun-style variables, a rendezvous on 127.0.0.1 at a free port,
 * a fresh token and run id), each running one module's rank function with a WebSocket
 * `Communicator` from `connectFromEnv`, and collects their results in rank order.
 * Arguments and results travel as JSON with typed arrays kept bit-exact (rank_json.ts).
 * @module
 */
import { freePort, rankModuleHref, type RankSpawnOptions } from "../dist/worker_ranks.ts";
import { launch } from "./launcher.ts";
import { ERROR_PREFIX, type ProcessRankSpec, RESULT_PREFIX } from "./rank_json.ts";
import { decodeRankJson, encodeRankJson } from "./rank_json.ts";

/** Options of {@linkcode spawnProcessRanks}. */
export interface SpawnProcessRanksOptions<A> extends RankSpawnOptions<A> {
  /** Wall-clock limit of the whole run, ms: ranks still running then are killed. Default: none. */
  deadlineMs?: number;
  /** Extra environment of every rank (e.g. `LASP_GPU`). */
  env?: Record<string, string>;
  /** PCI addresses to spread ranks over (lib/launch/launcher.ts); default [] (the default adapter). */
  gpus?: string[];
  /** Flags for `deno run -A`, e.g. `["--cached-only"]`. */
  denoArgs?: string[];
  /** Bytes per WebSocket frame of large messages. Default: the transport's. */
  partBytes?: number;
  /** Every other output line of the ranks (default: stderr lines are kept for error messages only). */
  onLine?: (rank: number, line: string, stream: "stdout" | "stderr") => void;
}

const ENTRY = new URL("./process_rank_entry.ts", import.meta.url);
/** Linux caps one command-line argument at 128 KiB. */
const MAX_SPEC_CHARS = 120_000;
const TAIL_LINES = 6;

function secret(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/**
 * Runs the rank function of `module` in `world` processes and returns their results in rank
 * order. When a rank fails (throws, exits or is killed), the others are stopped and the call
 * rejects naming every failed rank, the ones that caused the failure first.
 */
export async function spawnProcessRanks<R = unknown, A = unknown>(
  options: SpawnProcessRanksOptions<A>,
): Promise<R[]> {
  const { world } = options;
  const module = rankModuleHref(world, options.module);
  const spec: ProcessRankSpec = {
    module,
    exportName: options.exportName ?? "rank",
    args: options.args ?? null,
    sp: options.sp,
    timeoutMs: options.timeoutMs,
    partBytes: options.partBytes,
  };
  const specText = encodeRankJson(spec);
  if (specText.length > MAX_SPEC_CHARS) {
    throw new Error(
      `Rank arguments too large: ${specText.length} characters of JSON (limit ${MAX_SPEC_CHARS}); pass a file path instead`,
    );
  }
  const results = new Map<number, R>();
  const failures = new Map<number, { message: string; stopped: boolean }>();
  const tails: string[][] = Array.from({ length: world }, () => []);
  const fail = (rank: number, message: string, stopped = false) => {
    if (failures.has(rank)) return;
    const named = message.startsWith(`Rank ${rank}`) ? message : `Rank ${rank}: ${message}`;
    failures.set(rank, { message: named, stopped });
  };
  const deadline = new AbortController();
  const timer = options.deadlineMs === undefined
    ? undefined
    : setTimeout(() => deadline.abort(), options.deadlineMs);
  try {
    await launch({
      nproc: world,
      command: [...(options.denoArgs ?? []), ENTRY.pathname, specText],
      masterPort: freePort(),
      gpus: options.gpus ?? [],
      env: { ...options.env, LASP_TOKEN: secret(), LASP_RUN_ID: `ranks-${secret().slice(0, 12)}` },
      signal: deadline.signal,
      onLine: (rank, line, stream) => {
        if (stream === "stdout" && line.startsWith(RESULT_PREFIX)) {
          results.set(rank, decodeRankJson(line.slice(RESULT_PREFIX.length)) as R);
        } else if (stream === "stdout" && line.startsWith(ERROR_PREFIX)) {
          fail(rank, JSON.parse(line.slice(ERROR_PREFIX.length)));
        } else {
          if (stream === "stderr") tails[rank] = [...tails[rank], line].slice(-TAIL_LINES);
          options.onLine?.(rank, line, stream);
        }
      },
      onExit: (rank, code) => {
        if (results.has(rank) && code === 0) return;
        // 143: SIGTERM, which launch sends to the others once a rank failed
        const stopped = code === 143 && failures.size > 0 && !deadline.signal.aborted;
        const how = deadline.signal.aborted
          ? `killed after the deadline of ${options.deadlineMs} ms`
          : stopped
          ? `stopped after rank ${[...failures.keys()][0]} failed`
          : `exited with code ${code} without a result`;
        const tail = tails[rank].filter((l) => l.trim()).join(" / ");
        fail(rank, tail ? `${how}: ${tail}` : how, stopped);
      },
    });
  } finally {
    clearTimeout(timer);
  }
  if (failures.size > 0) {
    throw new Error(`${failures.size} of ${world} rank processes failed: ${ordered(failures)}`);
  }
  return Array.from({ length: world }, (_, rank) => results.get(rank)!);
}

/**
 * Failures in the order they were seen, except that ranks which only lost the connection to
 * another failed rank, or were stopped because of it, come after the ranks that caused it.
 */
function ordered(failures: Map<number, { message: string; stopped: boolean }>): string {
  const follows = ({ message, stopped }: { message: string; stopped: boolean }) => {
    const peer = message.match(/connection to rank (\d+)\b/);
    return stopped || (peer !== null && failures.has(Number(peer[1])));
  };
  const all = [...failures.values()];
  return [...all.filter((f) => !follows(f)), ...all.filter(follows)].map((f) => f.message)
    .join(" | ");
}
