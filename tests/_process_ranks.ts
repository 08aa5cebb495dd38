/**
 * Ranks as separate `deno run` processes talking over WebSockets on 127.0.0.1 (the real
 * multi-process path). Run as a script, this file is one rank: it connects, runs the rank
 * function named on its command line, and prints `RESULT <json>`; imported, it exports
 * {@linkcode spawnProcessRanks}, which starts W of them and collects the results.
 */
import { parseArgs } from "node:util";
import { Communicator } from "../lib/dist/communicator.ts";
import { connectWebSocketTransport } from "../lib/dist/ws/ws_transport.ts";
import { freePort } from "../lib/dist/worker_ranks.ts";

const TOKEN_ENV = "LASP_TEST_TOKEN";

/** JSON with Float32Arrays kept (exact: every float32 prints as a round-tripping number). */
function replacer(_key: string, value: unknown): unknown {
  return value instanceof Float32Array ? { $f32: Array.from(value) } : value;
}
function reviver(_key: string, value: unknown): unknown {
  const v = value as { $f32?: number[] } | null;
  return v && typeof v === "object" && Array.isArray(v.$f32) ? Float32Array.from(v.$f32) : value;
}

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
export async function spawnProcessRanks<R>(options: ProcessRanksOptions): Promise<R[]> {
  const master = `127.0.0.1:${freePort()}`;
  const runId = `proc-${crypto.randomUUID()}`;
  const token = crypto.randomUUID();
  const runs = Array.from(
    { length: options.world },
    (_, rank) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL(import.meta.url).pathname,
          `--rank=${rank}`,
          `--world=${options.world}`,
          `--master=${master}`,
          `--run-id=${runId}`,
          `--module=${options.module.href}`,
          `--export=${options.exportName}`,
          `--args=${JSON.stringify(options.args ?? null)}`,
          `--sp=${options.sp ?? options.world}`,
          `--timeout=${options.timeoutMs ?? 60_000}`,
        ],
        env: { [TOKEN_ENV]: token, LASP_GPU: "deno" },
        stdout: "piped",
        stderr: "piped",
      }).output(),
  );
  const outputs = await Promise.all(runs);
  return outputs.map((out, rank) => {
    const stdout = new TextDecoder().decode(out.stdout);
    const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
    if (!out.success || !line) {
      const stderr = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-5).join(" / ");
      throw new Error(`rank process ${rank} failed (exit ${out.code}): ${stderr}`);
    }
    return JSON.parse(line.slice(7), reviver) as R;
  });
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: Object.fromEntries(
      ["rank", "world", "master", "run-id", "module", "export", "args", "sp", "timeout"].map((
        k,
      ) => [k, { type: "string" as const }]),
    ),
  });
  const num = (k: string) => Number(values[k]);
  const transport = await connectWebSocketTransport({
    rank: num("rank"),
    world: num("world"),
    master: values.master!,
    runId: values["run-id"]!,
    token: Deno.env.get(TOKEN_ENV)!,
    partBytes: 4096,
    connectTimeoutMs: num("timeout"),
  });
  const comm = new Communicator(transport, { sp: num("sp"), timeoutMs: num("timeout") });
  const mod = await import(values.module!);
  const result = await mod[values.export!](comm, JSON.parse(values.args!));
  await comm.close();
  console.log(`RESULT ${JSON.stringify(result, replacer)}`);
  Deno.exit(0); // the GPU device may keep the event loop alive
}
