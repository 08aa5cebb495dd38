// LASP scaling: for each preset, LASP mode and number of GPUs T, trains a few steps with one
// process and GPU per rank (cli/launch.ts machinery; SP = T, DP = 1 unless --dp) at growing
// sequence lengths, and records per-GPU tokens/s, LASP bytes per rank per step, peak memory
// per rank, and the longest sequence that trained (doubling until a failure). Prints a
// markdown table for bench/RESULTS.md. Usage (on a host with ≥ max(T) GPUs):
//   deno run -A bench/scaling.ts [--presets 125m,1b] [--gpus 1,2,4,8] [--modes ring,allgather]
//     [--start 8192] [--max 1048576] [--steps 3] [--gpu deno|dawn] [--dp 1] [--timeout 600]
// Targets (issue 7): the longest sequence grows linearly with T; tokens/s per GPU at 8 GPUs
// ≥ 85% of its 1-GPU value at the same tokens per GPU.
import { detectGpus, launch } from "../lib/launch/launcher.ts";
import { flag } from "./_timing.ts";

const args = Deno.args;
const list = (name: string, fallback: string) => flag(args, name, fallback).split(",");
const presets = list("presets", "125m,1b");
const counts = list("gpus", "1,2,4,8").map(Number);
const modes = list("modes", "ring,allgather");
const start = Number(flag(args, "start", "8192"));
const max = Number(flag(args, "max", String(1 << 20)));
const dp = Number(flag(args, "dp", "1"));
const common = ["--steps", flag(args, "steps", "3"), "--gpu", flag(args, "gpu", "auto")];
const timeoutS = Number(flag(args, "timeout", "600"));
const gpus = await detectGpus();
console.log(
  `GPUs: ${gpus.length ? gpus.join(", ") : "none detected (ranks share the default adapter)"}`,
);

interface Row {
  preset: string;
  mode: string;
  gpus: number;
  seqLen: number;
  ok: boolean;
  tokensPerSecPerGpu?: number;
  laspBytesPerRank?: number;
  peakGiB?: number;
  /** Slowest rank's ms per step. */
  stepMs?: number;
  /** Mean ms per step a rank waited for LASP states. */
  laspWaitMs?: number;
  /** Mean over ranks of the wait after the backward for the gradient reduction (ms/step). */
  reduceWaitMs?: number;
  /** Slowest rank's bare ring all-reduce of all gradients (ms; none with one GPU). */
  allReduceMs?: number;
  error?: string;
}

let port = 29700;
async function run(preset: string, mode: string, t: number, seqLen: number): Promise<Row> {
  const world = t * dp;
  const results: Record<string, unknown>[] = [];
  const command = [
    new URL("./_scaling_rank.ts", import.meta.url).pathname,
    ...["--preset", preset, "--seq-len", String(seqLen), "--sp", String(t), "--lasp", mode],
    ...common,
  ];
  const run = launch({
    nproc: world,
    command: ["--cached-only", ...command],
    masterPort: port++,
    gpus,
    onLine: (_rank, line) => {
      if (line.startsWith("SCALING ")) results.push(JSON.parse(line.slice(8)));
    },
  });
  const timeout = new Promise<number>((r) => setTimeout(() => r(-1), timeoutS * 1000));
  const code = await Promise.race([run, timeout]);
  const ok = code === 0 && results.length === world && results.every((r) => r.ok);
  const row: Row = { preset, mode, gpus: world, seqLen, ok };
  if (ok) {
    const mean = (k: string) => results.reduce((s, r) => s + (r[k] as number), 0) / world;
    row.tokensPerSecPerGpu = Math.round(mean("tokensPerSec"));
    row.laspBytesPerRank = Math.round(mean("laspBytesPerStep"));
    row.peakGiB = Math.max(...results.map((r) => r.peakGiB as number));
    row.stepMs = Math.max(...results.map((r) => r.stepMs as number));
    row.laspWaitMs = Math.round(mean("laspWaitMsPerStep"));
    row.reduceWaitMs = Math.round(mean("reduceWaitMsPerStep"));
    if (world > 1) row.allReduceMs = Math.max(...results.map((r) => r.allReduceMs as number));
  } else {
    row.error = code === -1
      ? `timeout ${timeoutS} s`
      : String(results.find((r) => !r.ok)?.error ?? `exit ${code}`);
  }
  console.log(JSON.stringify(row));
  return row;
}

const rows: Row[] = [];
const longest: string[] = [];
for (const preset of presets) {
  for (const mode of modes) {
    for (const t of counts) {
      let best = 0;
      for (let n = start * t; n <= max * t; n *= 2) {
        const row = await run(preset, mode, t, n);
        rows.push(row);
        if (!row.ok) break;
        best = n;
      }
      longest.push(`| ${preset} | ${mode} | ${t * dp} | ${best || "none"} |`);
    }
  }
}
console.log(
  "\n| preset | mode | GPUs | seq len | tokens/s per GPU | ms/step | LASP wait ms/step | reduction wait after backward ms/step | bare gradient ring all-reduce ms | LASP bytes per rank per step | peak GiB per rank | note |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(
    `| ${r.preset} | ${r.mode} | ${r.gpus} | ${r.seqLen} | ${r.tokensPerSecPerGpu ?? ""} | ${
      r.stepMs ?? ""
    } | ${r.laspWaitMs ?? ""} | ${r.reduceWaitMs ?? ""} | ${r.allReduceMs ?? ""} | ${
      r.laspBytesPerRank ?? ""
    } | ${r.peakGiB ?? ""} | ${r.ok ? "" : r.error} |`,
  );
}
console.log("\n| preset | mode | GPUs | longest sequence trained |\n|---|---|---|---|");
for (const l of longest) console.log(l);
Deno.exit(0);
