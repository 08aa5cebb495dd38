// LASP exchange benchmark. Ranks are Workers of this process ("--ranks-as workers", the
// default: all on the same GPU, each with its own device), talking over MessagePorts
// ("worker") or WebSockets on 127.0.0.1 ("websocket"); or separate `deno` processes
// ("--ranks-as processes": lib/launch/process_ranks.ts, a rendezvous on 127.0.0.1 at a free
// port with a fresh token, WebSockets only), each opening its own device from --gpu on the
// default adapter; this is the mode for Dawn (--gpu dawn), which hangs inside Workers. The
// main process opens a device from --gpu for the single-device reference only. First every
// (ranks, transport, T) is validated: two chained layers, forward and backward, against the
// single-device op on the whole sequence (rel RMS ≤ 2e-6). Then, per sequence length N and
// exchange variant, one layer's forward + backward is timed (wall clock, barrier to GPU idle;
// the slowest rank counts), with the time spent waiting for peers, and the bytes and messages
// each rank sends per layer: B·H·d·d floats per hop, whatever N. "host xchg" is the bare state
// exchange of one layer and direction without the GPU (ring: T−1 hops; all-gather: one
// collective). The table (with the WebGPU implementation the ranks used) is printed last. Usage:
//   deno run -A bench/lasp_exchange.ts [--ranks-as workers|processes|workers,processes]
//     [--gpu deno|dawn|auto] [--transports worker,websocket] [--ranks 1,2,4,8]
//     [--lengths 8192,32768,131072] [--batch 1] [--heads 16] [--d 128]
//     [--variants ring,ring-nooverlap,allgather] [--layers 2] [--warmup 2] [--iters 5] [--quick]
//   --ranks-as processes defaults to --transports websocket (and skips "worker"); --gpu dawn
//   needs it. Rank processes run with --cached-only (the parent run has cached the imports).
import {
  type GpuChoice,
  joinSequence,
  openDevice,
  resolveGpuChoice,
  spawnWorkerRanks,
} from "../mod.ts";
import { spawnProcessRanks } from "../lib/launch/process_ranks.ts";
import {
  type ChainCase,
  type ChainSizes,
  type laspChain,
  referenceChain,
} from "../lib/testing/lasp_chain.ts";
import { closeStats } from "../lib/testing/assert_close.ts";
import { flag } from "./_timing.ts";
import type { ExchangeArgs, RankReport, Variant } from "./_lasp_exchange_rank.ts";

type RanksAs = "workers" | "processes";
type Transport = "worker" | "websocket";

const args = Deno.args;
const quick = args.includes("--quick");
const list = (name: string, fallback: string) => flag(args, name, fallback).split(",");
const gpuChoice: GpuChoice = resolveGpuChoice(flag(args, "gpu", "auto"));
Deno.env.set("LASP_GPU", gpuChoice); // validation ranks open their device from the environment
const ranksAs = list("ranks-as", "workers").map((r) => {
  if (r !== "workers" && r !== "processes") {
    throw new Error(`Unknown --ranks-as "${r}": use workers, processes or both`);
  }
  return r as RanksAs;
});
if (gpuChoice === "dawn" && ranksAs.includes("workers")) {
  throw new Error(
    "--gpu dawn needs --ranks-as processes: Dawn hangs inside Workers (openDevice refuses it there)",
  );
}
const onlyProcesses = ranksAs.every((r) => r === "processes");
const transports = list("transports", onlyProcesses ? "websocket" : "worker,websocket").map(
  (t) => {
    if (t !== "worker" && t !== "websocket") {
      throw new Error(`Unknown transport "${t}": use worker, websocket or both`);
    }
    if (t === "worker" && onlyProcesses) {
      throw new Error(
        'Transport "worker" needs --ranks-as workers: rank processes talk over "websocket"',
      );
    }
    return t as Transport;
  },
);
/** Every way of running the ranks: processes only over WebSockets. */
const launches = ranksAs.flatMap((r) =>
  transports.filter((t) => r === "workers" || t === "websocket").map((t) => ({
    ranksAs: r,
    transport: t,
  }))
);
const rankCounts = list("ranks", quick ? "1,2,3" : "1,2,4,8").map(Number);
const lengths = list("lengths", quick ? "384,1536" : "8192,32768,131072").map(Number);
const VARIANTS: Record<string, Variant> = {
  "ring": { name: "ring", mode: "ring", overlap: true },
  "ring-nooverlap": { name: "ring-nooverlap", mode: "ring", overlap: false },
  "allgather": { name: "allgather", mode: "allgather", overlap: true },
};
const variants = list("variants", "ring,ring-nooverlap,allgather").map((v) => {
  if (!VARIANTS[v]) {
    throw new Error(`Unknown variant "${v}": use ${Object.keys(VARIANTS).join(", ")}`);
  }
  return VARIANTS[v];
});
const sizes = {
  batch: Number(flag(args, "batch", "1")),
  heads: Number(flag(args, "heads", quick ? "2" : "16")),
  d: Number(flag(args, "d", quick ? "16" : "128")),
};
const layers = Number(flag(args, "layers", "2"));
const warmup = Number(flag(args, "warmup", quick ? "1" : "2"));
const iters = Number(flag(args, "iters", quick ? "2" : "5"));
for (const T of rankCounts) {
  for (const N of lengths) {
    if (N % T !== 0) {
      throw new Error(
        `Cannot split sequence of ${N} tokens over ${T} ranks: choose lengths divisible by every rank count`,
      );
    }
  }
}

/** Runs a rank function on T ranks launched one way; results in rank order. */
function spawnRanks<R>(
  how: { ranksAs: RanksAs; transport: Transport },
  T: number,
  run: { module: URL; exportName: string; args: unknown; timeoutMs?: number },
): Promise<R[]> {
  if (how.ranksAs === "workers") {
    return spawnWorkerRanks<R>({ world: T, ...run, transport: how.transport });
  }
  return spawnProcessRanks<R>({
    world: T,
    ...run,
    env: { LASP_GPU: gpuChoice },
    denoArgs: ["--cached-only"],
    onLine: (rank, line, stream) => stream === "stderr" && console.error(`[rank ${rank}] ${line}`),
  });
}

/** "dawn", or e.g. "dawn+deno" if the ranks differ; adapters likewise. */
function describeRanks(devices: { implementation: string; adapter: string }[]) {
  const unique = (xs: string[]) => [...new Set(xs)].join(" + ");
  return {
    implementation: unique(devices.map((d) => d.implementation)),
    adapter: unique(devices.map((d) => d.adapter)),
  };
}

const mainGpu = await openDevice({ gpu: gpuChoice, nanFill: true });
const reference = `${mainGpu.adapterName} (${mainGpu.implementation})`;
console.log(
  `reference device (main process): ${reference}; ranks: ${
    ranksAs.map((r) =>
      r === "workers"
        ? "Workers of this process, each with its own device"
        : `separate deno processes, each opening its own device (--gpu ${gpuChoice})`
    ).join("; ")
  }`,
);

// ---- validation -------------------------------------------------------------------------------
const VSIZES: ChainSizes = { batch: 2, heads: 2, local: 37, dk: 8, dv: 6, chunk: 32 };
const VCASES: ChainCase[] = variants.map((v) => ({
  mode: v.mode,
  overlap: v.overlap,
  decays: [[0.9, 0.99], [0.8, 0.97]],
}));
const VALIDATION_RMS = 2e-6;
let failed = false;
for (const how of launches) {
  for (const T of rankCounts) {
    const out = await spawnRanks<Awaited<ReturnType<typeof laspChain>>>(how, T, {
      module: new URL("../lib/testing/lasp_chain.ts", import.meta.url),
      exportName: "laspChain",
      args: { sizes: VSIZES, cases: VCASES },
    });
    let worst = 0;
    for (const [c, kase] of VCASES.entries()) {
      const ref = await referenceChain(mainGpu, c, kase, VSIZES, T * VSIZES.local);
      for (const key of Object.keys(ref) as (keyof typeof ref)[]) {
        const inner = key.startsWith("dq") || key.startsWith("dk") ? VSIZES.dk : VSIZES.dv;
        const got = joinSequence(
          out.map((o) => o.results[c][key]),
          VSIZES.batch * VSIZES.heads,
          inner,
        );
        const s = closeStats(got, ref[key]);
        worst = Math.max(worst, s.nonFinite > 0 ? Infinity : s.relRms);
      }
    }
    const ok = worst <= VALIDATION_RMS;
    failed ||= !ok;
    const ranks = describeRanks(out.map((o) => o.device));
    console.log(
      `validate ${how.ranksAs}/${how.transport} T=${T} (${
        variants.map((v) => v.name).join(", ")
      }): worst rel RMS ${worst.toExponential(2)} ${
        ok ? "ok" : `FAIL (> ${VALIDATION_RMS})`
      }; ranks on ${ranks.adapter} (${ranks.implementation})`,
    );
  }
}
mainGpu.destroy();

// ---- timing -----------------------------------------------------------------------------------
interface Row {
  ranksAs: RanksAs;
  transport: Transport;
  T: number;
  report: RankReport[];
}
const results: Row[] = [];
for (const how of launches) {
  for (const T of rankCounts) {
    const exchangeArgs: ExchangeArgs = {
      gpu: gpuChoice,
      ...sizes,
      lengths,
      variants: T === 1 ? [variants[0]] : variants,
      layers,
      warmup,
      iters,
    };
    const report = await spawnRanks<RankReport>(how, T, {
      module: new URL("./_lasp_exchange_rank.ts", import.meta.url),
      exportName: "exchangeRank",
      args: exchangeArgs,
      timeoutMs: 600_000,
    });
    results.push({ ...how, T, report });
    console.log(`timed ${how.ranksAs}/${how.transport} T=${T}`);
  }
}

const stateBytes = sizes.batch * sizes.heads * sizes.d * sizes.d * 4;
const header = [
  "ranks",
  "rank gpu",
  "transport",
  "variant",
  "T",
  "N",
  "N/T",
  "layer fwd+bwd ms",
  "wait ms/layer",
  "host xchg ms",
  "KiB sent/rank/layer",
  "msgs/rank/layer",
];
const col = (name: string) => header.indexOf(name);
const lines = [header];
const adapters = new Set<string>();
for (const { ranksAs, transport, T, report } of results) {
  const ranks = describeRanks(
    report.map((r) => ({ implementation: r.implementation, adapter: r.adapter })),
  );
  adapters.add(ranks.adapter);
  for (const [i, row] of report[0].rows.entries()) {
    const across = report.map((r) => r.rows[i]);
    const mode = VARIANTS[row.variant].mode;
    lines.push([
      ranksAs,
      ranks.implementation,
      transport,
      T === 1 ? "single" : row.variant,
      String(T),
      String(row.length),
      String(row.length / T),
      Math.max(...across.map((r) => r.layerMs)).toFixed(2),
      (across.reduce((s, r) => s + r.waitMs, 0) / T).toFixed(2),
      T === 1 ? "-" : Math.max(...report.map((r) => r.hostMs[mode])).toFixed(3),
      (Math.max(...across.map((r) => r.bytesSent)) / 1024).toFixed(0),
      String(Math.max(...across.map((r) => r.messagesSent))),
    ]);
  }
}
// bytes per rank and layer must not depend on N: compare across lengths per configuration
const byConfig = new Map<string, Set<string>>();
for (const l of lines.slice(1)) {
  const key = ["ranks", "rank gpu", "transport", "variant", "T"].map((c) => l[col(c)]).join(" ");
  if (!byConfig.has(key)) byConfig.set(key, new Set());
  byConfig.get(key)!.add(l[col("KiB sent/rank/layer")]);
}
const growing = [...byConfig].filter(([, bytes]) => bytes.size > 1).map(([key]) => key);
console.log(
  growing.length === 0
    ? `\nbytes sent per rank and layer are the same for every N (${lengths.join(", ")})`
    : `\nbytes per rank change with N for: ${growing.join("; ")}`,
);
const widths = header.map((_, c) => Math.max(...lines.map((l) => l[c].length)));
console.log(
  `LASP exchange, B=${sizes.batch} H=${sizes.heads} d=${sizes.d} (state ${
    (stateBytes / 1024).toFixed(0)
  } KiB per hop), ${layers} layers, median of ${iters}; ranks ${ranksAs.join(" and ")} on ${
    [...adapters].join(" + ")
  } ("rank gpu": the WebGPU implementation the ranks used); reference on the main process: ${reference}`,
);
for (const [j, l] of lines.entries()) {
  console.log(`| ${l.map((x, c) => x.padStart(widths[c])).join(" | ")} |`);
  if (j === 0) console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
}
if (failed) {
  console.log("validation FAILED: the timings above are of a wrong result");
  Deno.exit(1);
}
Deno.exit(0);
