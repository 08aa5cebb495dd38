// All-reduce bandwidth on loopback: W = 2 and 4 rank processes started by the launcher
// (lib/launch/launcher.ts, torchrun-style variables), talking over WebSockets. Per size, in
// the same run: raw point-to-point bandwidth rank 0 → 1 (one message of the whole buffer), the
// same with both ranks sending at once (each link of a ring carries traffic both ways),
// ring all-reduce bus bandwidth busBW = 2(W−1)/W · bytes / time, and the Communicator's
// direct all-reduce for comparison; each all-reduce is validated (exact sums) before it is
// timed. Then memory per rank per ZeRO stage for the 125m and 1b presets, from the sharding
// layout of lib/train/zero_layout.ts. Tables are printed last. Usage:
//   deno run -A bench/allreduce_bandwidth.ts [--ranks 2,4] [--sizes 1,4,16,64,256] [--reps 3]
//     [--piece-bytes 1048576] [--worlds 2,4,8,64] [--bucket-mib 25] [--memory-only]
import { launch } from "../lib/launch/launcher.ts";
import { resolveModelConfig } from "../lib/model/config.ts";
import { parameterSpecs } from "../lib/model/params.ts";
import {
  backwardOrder,
  bucketUnits,
  type FlatParam,
  layerUnits,
  ZeroLayout,
} from "../lib/train/zero_layout.ts";
import { freePort } from "../lib/dist/worker_ranks.ts";
import { flag } from "./_timing.ts";
import type { SizeResult } from "./_allreduce_rank.ts";

const args = Deno.args;
const rankCounts = args.includes("--memory-only")
  ? []
  : flag(args, "ranks", "2,4").split(",").map(Number);
const worlds = flag(args, "worlds", "2,4,8,64").split(",").map(Number);
const bucketBytes = Number(flag(args, "bucket-mib", "25")) * (1 << 20);
const passOn = ["sizes", "reps", "piece-bytes"].flatMap((k) => {
  const v = flag(args, k, "");
  return v ? [`--${k}`, v] : [];
});

const MiB = 1 << 20;
const rows: string[] = [];
for (const W of rankCounts) {
  let result: SizeResult[] | undefined;
  const errors: string[] = [];
  const code = await launch({
    nproc: W,
    command: [new URL("./_allreduce_rank.ts", import.meta.url).pathname, ...passOn],
    masterPort: freePort(),
    gpus: [],
    env: { LASP_TOKEN: crypto.randomUUID(), LASP_RUN_ID: `allreduce-${W}` },
    onLine: (rank, line, stream) => {
      if (rank === 0 && line.startsWith("RESULT ")) result = JSON.parse(line.slice(7));
      else if (stream === "stderr") errors.push(`[rank ${rank}] ${line}`);
    },
  });
  if (code !== 0 || !result) {
    throw new Error(`W=${W}: ranks failed (exit ${code}): ${errors.slice(-5).join(" / ")}`);
  }
  for (const r of result) {
    const bytes = r.mib * MiB;
    const p2p = bytes / MiB / (r.p2pMs / 1000), duplex = bytes / MiB / (r.duplexMs / 1000);
    const bus = (2 * (W - 1)) / W * bytes / MiB;
    const ring = bus / (r.ringMs / 1000), direct = bus / (r.directMs / 1000);
    rows.push(
      `| ${W} | ${r.mib} | ${p2p.toFixed(0)} | ${duplex.toFixed(0)} | ${r.ringMs.toFixed(1)} | ${
        ring.toFixed(0)
      } | ${(100 * ring / p2p).toFixed(0)}% | ${(100 * ring / duplex).toFixed(0)}% | ${
        r.directMs.toFixed(1)
      } | ${direct.toFixed(0)} |`,
    );
  }
}
if (rows.length > 0) {
  console.log(
    "\nAll-reduce on loopback, WebSocket processes (MiB/s; busBW = 2(W−1)/W · bytes / time)",
  );
  console.log(
    "| W | MiB | p2p MiB/s | p2p both ways, MiB/s each | ring ms | ring busBW | ring/p2p | ring/both-ways | direct ms | direct busBW |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|");
  for (const row of rows) console.log(row);
}

// memory per rank per ZeRO stage, from the layouts the optimizer uses (f32 everywhere)
const memRows: string[] = [];
for (const preset of ["125m", "1b"]) {
  const params: FlatParam[] = parameterSpecs(resolveModelConfig({}, { preset })).map((s) => ({
    name: s.name,
    size: s.shape.reduce((a, b) => a * b, 1),
    decay: s.decay,
  }));
  const count = params.reduce((n, p) => n + p.size, 0);
  for (const W of worlds) {
    for (const stage of [0, 1, 2, 3] as const) {
      const units = stage === 3
        ? layerUnits(params)
        : bucketUnits(backwardOrder(params), bucketBytes);
      const m = new ZeroLayout(units, W, 0).memory(stage);
      const mib = (b: number) => (b / MiB).toFixed(0);
      memRows.push(
        `| ${preset} | ${(count / 1e6).toFixed(1)}M | ${W} | ${stage} | ${mib(m.paramBytes)} | ${
          mib(m.gradBytes)
        } | ${mib(m.momentBytes)} | ${mib(m.totalBytes)} |`,
      );
    }
  }
}
console.log(
  `\nMemory per rank (MiB, f32; buckets of ${
    bucketBytes / MiB
  } MiB for ZeRO-0/1/2, one unit per layer for ZeRO-3)`,
);
console.log("| model | params | W | ZeRO | params | grads | AdamW m+v | total |");
console.log("|---|---|---|---|---|---|---|---|");
for (const row of memRows) console.log(row);
