// LASP exchange benchmark: ranks are Workers of this process on loopback (all on the same
// GPU, each with its own device), talking over MessagePorts ("worker") or WebSockets on
// 127.0.0.1 ("websocket"). First every (transport, T) is validated: two chained layers,
// forward and backward, against the single-device op on the whole sequence. Then, per
// sequence length N and exchange variant, one layer's forward + backward is timed (wall
// clock, barrier to GPU idle; the slowest rank counts), with the time spent waiting for
// peers, and the bytes and messages each rank sends per layer: B·H·d·d floats per hop,
// whatever N. "host xchg" is the bare state exchange of one layer and direction without
// the GPU (ring: T−1 hops; all-gather: one collective). The table is printed last. Usage:
//   deno run -A bench/lasp_exchange.ts [--gpu deno|dawn|auto] [--transports worker,websocket]
//     [--ranks 1,2,4,8] [--lengths 8192,32768,131072] [--batch 1] [--heads 16] [--d 128]
//     [--variants ring,ring-nooverlap,allgather] [--layers 2] [--warmup 2] [--iters 5] [--quick]
import {
  type GpuChoice,
  joinSequence,
  openDevice,
  resolveGpuChoice,
  spawnWorkerRanks,
} from "../mod.ts";
import {
  type ChainCase,
  type ChainSizes,
  type laspChain,
  referenceChain,
} from "../lib/testing/lasp_chain.ts";
import { closeStats } from "../lib/testing/assert_close.ts";
import { flag } from "./_timing.ts";
import type { ExchangeArgs, RankReport, Variant } from "./_lasp_exchange_rank.ts";

const args = Deno.args;
const quick = args.includes("--quick");
const list = (name: string, fallback: string) => flag(args, name, fallback).split(",");
const gpuChoice: GpuChoice = resolveGpuChoice(flag(args, "gpu", "auto"));
Deno.env.set("LASP_GPU", gpuChoice); // validation ranks open their device from the environment
const transports = list("transports", "worker,websocket") as ("worker" | "websocket")[];
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

const mainGpu = await openDevice({ gpu: gpuChoice, nanFill: true });
console.log(
  `device: ${mainGpu.adapterName} (${mainGpu.implementation}); ranks are Workers sharing it`,
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
for (const transport of transports) {
  for (const T of rankCounts) {
    const out = await spawnWorkerRanks<Awaited<ReturnType<typeof laspChain>>>({
      world: T,
      module: new URL("../lib/testing/lasp_chain.ts", import.meta.url),
      exportName: "laspChain",
      args: { sizes: VSIZES, cases: VCASES },
      transport,
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
    console.log(
      `validate ${transport} T=${T} (${variants.map((v) => v.name).join(", ")}): worst rel RMS ${
        worst.toExponential(2)
      } ${ok ? "ok" : `FAIL (> ${VALIDATION_RMS})`}`,
    );
  }
}

// ---- timing -----------------------------------------------------------------------------------
interface Row {
  transport: string;
  T: number;
  report: RankReport[];
}
const results: Row[] = [];
for (const transport of transports) {
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
    const report = await spawnWorkerRanks<RankReport>({
      world: T,
      module: new URL("./_lasp_exchange_rank.ts", import.meta.url),
      exportName: "exchangeRank",
      args: exchangeArgs,
      transport,
      timeoutMs: 600_000,
    });
    results.push({ transport, T, report });
    console.log(`timed ${transport} T=${T}`);
  }
}

const stateBytes = sizes.batch * sizes.heads * sizes.d * sizes.d * 4;
const header = [
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
const lines = [header];
for (const { transport, T, report } of results) {
  for (const [i, row] of report[0].rows.entries()) {
    const across = report.map((r) => r.rows[i]);
    const mode = VARIANTS[row.variant].mode;
    lines.push([
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
// bytes per rank and layer must not depend on N: compare across lengths per (transport, T, variant)
const byConfig = new Map<string, Set<string>>();
for (const l of lines.slice(1)) {
  const key = `${l[0]} ${l[1]} T=${l[2]}`;
  if (!byConfig.has(key)) byConfig.set(key, new Set());
  byConfig.get(key)!.add(l[8]);
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
  } KiB per hop), ${layers} layers, median of ${iters}; ${mainGpu.adapterName} (${mainGpu.implementation})`,
);
for (const [j, l] of lines.entries()) {
  console.log(`| ${l.map((x, c) => x.padStart(widths[c])).join(" | ")} |`);
  if (j === 0) console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
}
mainGpu.destroy();
if (failed) {
  console.log("validation FAILED: the timings above are of a wrong result");
  Deno.exit(1);
}
Deno.exit(0);
