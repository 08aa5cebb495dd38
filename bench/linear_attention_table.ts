// Linear attention throughput table: every variant is first validated against the float64
// definition on the current device (small odd N, the benchmark's head widths), then forward
// and forward+backward are timed at the benchmark shapes. The table is printed last.
// TFLOP/s counts docs LASP.md's formula: forward 4·T·d·(d + C), backward 10·T·d·(d + C),
// T = B·H·N; "% peak" is of the H100's fp32 FMA peak (66.9 TFLOP/s). Usage:
//   deno run -A bench/linear_attention_table.ts [--gpu deno|dawn|auto] [--shapes paper|small|B,H,N,d;…]
//     [--dtype f32|f16 (f16 storage: built-in WebGPU only)]
//     [--chunk 64,32] [--tile auto,4x8,8x4] [--bk auto,16,8] [--state-tile auto,128x128/8x8,64x64/4x4]
//     [--state-mb 256,32] [--part auto,4,16] [--iters 10] [--breakdown]
import { GpuProfiler, type LaIoType, openDevice, type Tensor, uploadTensor } from "../mod.ts";
import {
  laBackward,
  laForward,
  type LaShape,
  type LaTuning,
  linearAttention,
  linearAttentionBackward,
  linearAttentionBackwardReference,
  linearAttentionReference,
} from "../lib/ops/linear_attention/mod.ts";
import {
  chooseOutputTile,
  chooseStateTile,
  partitioning,
} from "../lib/ops/linear_attention/config.ts";
import { outputGeometry } from "../shaders/linear_attention/chunk_output.ts";
import { randomArray } from "../lib/testing/reference.ts";
import { closeStats } from "../lib/testing/assert_close.ts";
import { flag, timeGpu } from "./_timing.ts";

const PEAK_TFLOPS = 66.9; // H100 SXM fp32 FMA
const args = Deno.args;
const gpu = await openDevice({ gpu: flag(args, "gpu", "auto") as "auto" });
const iterations = Number(flag(args, "iters", "10"));
const dtype = flag(args, "dtype", "f32") as LaIoType;
// f16 storage rounds inputs and outputs (unit roundoff 4.9e-4); the reference sees f32 inputs
const tolerance = dtype === "f16" ? 3e-3 : 1e-5;
const SHAPES: Record<string, number[][]> = {
  paper: [[4, 32, 4096, 128], [2, 16, 16384, 128], [1, 16, 65536, 128], [8, 16, 4096, 64]],
  small: [[1, 4, 512, 64], [1, 2, 1024, 128]],
};
const shapeArg = flag(args, "shapes", "paper");
const shapes = (SHAPES[shapeArg] ?? shapeArg.split(";").map((s) => s.split(",").map(Number)))
  .map(([batch, heads, length, d]): LaShape => ({ batch, heads, length, dk: d, dv: d }));
const list = (name: string, fallback: string) => flag(args, name, fallback).split(",");
const auto = <T>(s: string, parse: (s: string) => T) => (s === "auto" ? undefined : parse(s));

// ---- variants: the product of the listed knobs ------------------------------------------------
const variants: LaTuning[] = [];
for (const chunk of list("chunk", "64").map(Number)) {
  for (const tile of list("tile", "auto")) {
    for (const bk of list("bk", "auto")) {
      for (const st of list("state-tile", "auto")) {
        for (const mb of list("state-mb", "256")) {
          for (const part of list("part", "auto")) {
            const [tm, tn] = auto(tile, (s) => s.split("x").map(Number)) ?? [];
            variants.push({
              chunk,
              tm,
              tn,
              bk: auto(bk, Number),
              stateTile: auto(st, (s) => {
                const [b, t] = s.split("/").map((x) => x.split("x").map(Number));
                return { bm: b[0], bn: b[1], tm: t[0], tn: t[1], bk: 16 };
              }),
              stateBudgetBytes: Number(mb) * 2 ** 20,
              partChunks: auto(part, Number),
            });
          }
        }
      }
    }
  }
}

/** What a variant resolves to at a shape (auto fields filled in). */
function describe(t: LaTuning, s: LaShape): string {
  const o = chooseOutputTile(gpu, s.dv, t), st = chooseStateTile(s, t);
  const part = partitioning(gpu, s, o.chunk, t);
  return `C${o.chunk} out ${o.tm}x${o.tn}/bn${outputGeometry(o).bn}/bk${o.bk} ` +
    `state ${st.bm}x${st.bn}/${st.tm}x${st.tn} part ${part.partChunks} seg ${part.segChunks}`;
}

console.log(
  `device: ${gpu.adapterName} (${gpu.implementation}), ${dtype}, ${variants.length} variant(s)`,
);

// ---- validation against float64 at a small size, per variant and head width ------------------
const validation = new Map<LaTuning, number>();
for (const tuning of variants) {
  let worst = 0;
  for (const d of new Set(shapes.map((s) => s.dk))) {
    // 4 chunks (the last one partial) in parts of 2 (unless set), one part per segment
    const chunk = tuning.chunk ?? 64, partChunks = tuning.partChunks ?? 2;
    const s: LaShape = { batch: 1, heads: 2, length: 4 * chunk - 27, dk: d, dv: d };
    const small = { ...tuning, partChunks, stateBudgetBytes: partChunks * 2 * d * d * 4 };
    const n = s.heads * s.length * d;
    const c = {
      q: randomArray(n, 1),
      k: randomArray(n, 2),
      v: randomArray(n, 3),
      decay: [1, 0.9],
      shape: s,
      initialState: randomArray(s.heads * d * d, 4),
      dtype,
    };
    const dO = randomArray(n, 5), dFinalState = randomArray(s.heads * d * d, 6);
    const f = await linearAttention(gpu, { ...c, tuning: small });
    const b = await linearAttentionBackward(gpu, { ...c, dO, dFinalState, tuning: small });
    const rf = linearAttentionReference(c);
    const rb = linearAttentionBackwardReference({ ...c, dO, dFinalState });
    const pairs: [string, Float32Array, Float64Array][] = [
      ["o", f.o, rf.o],
      ["finalState", f.finalState, rf.finalState],
      ["dq", b.dq, rb.dq],
      ["dk", b.dk, rb.dk],
      ["dv", b.dv, rb.dv],
      ["dInitialState", b.dInitialState, rb.dInitialState],
    ];
    for (const [name, got, ref] of pairs) {
      const st = closeStats(got, ref);
      if (st.nonFinite > 0 || !(st.relRms <= tolerance)) {
        throw new Error(`${describe(tuning, s)}: ${name} wrong at d=${d}: ${JSON.stringify(st)}`);
      }
      worst = Math.max(worst, st.relRms);
    }
  }
  validation.set(tuning, worst);
  console.log(`validated ${JSON.stringify(tuning)}: worst rel RMS ${worst.toExponential(1)}`);
}

// ---- timing -------------------------------------------------------------------------------------
const rows: string[][] = [];
const breakdowns: string[] = [];
for (const s of shapes) {
  const t = s.batch * s.heads * s.length, d = s.dk;
  const qk = [s.batch, s.heads, s.length, d];
  const up = (seed: number) => uploadTensor(gpu, randomArray(t * d, seed, -0.5, 0.5), qk, dtype);
  const [q, k, v, dO] = [up(11), up(12), up(13), up(14)];
  // per-head decays spread over (0.96, 1), as slow-decay heads of a TNL model
  const decay = Array.from(
    { length: s.heads },
    (_, h) => Math.exp(-(2 ** -(5 + (8 * h) / s.heads))),
  );
  for (const tuning of variants) {
    const release = (ts: Tensor[]) => ts.forEach((x) => x.release());
    const forward = async () => {
      const r = await laForward(gpu, { q, k, v, decay, tuning });
      release([r.o, r.finalState]);
    };
    const both = async () => {
      await forward();
      const g = await laBackward(gpu, { q, k, v, dO, decay, tuning });
      release([g.dq, g.dk, g.dv, g.dInitialState]);
    };
    const f = await timeGpu(gpu, forward, { iterations });
    const fb = await timeGpu(gpu, both, { iterations });
    const chunk = tuning.chunk ?? 64;
    const flopF = 4 * t * d * (d + chunk), flopFB = 14 * t * d * (d + chunk);
    const tflops = (flop: number, ms: number) => flop / (ms * 1e-3) / 1e12;
    rows.push([
      `${s.batch},${s.heads},${s.length},${d}`,
      describe(tuning, s),
      f.ms.toFixed(3),
      fb.ms.toFixed(3),
      ((s.batch * s.length) / (fb.ms * 1e-3) / 1e6).toPrecision(3),
      tflops(flopF, f.ms).toPrecision(3),
      tflops(flopFB, fb.ms).toPrecision(3),
      ((100 * tflops(flopFB, fb.ms)) / PEAK_TFLOPS).toPrecision(3),
      fb.wallMs.toFixed(3),
      validation.get(tuning)!.toExponential(1),
      f.method,
    ]);
    if (args.includes("--breakdown") && gpu.features.has("timestamp-query")) {
      const prof = new GpuProfiler(gpu).start();
      await both();
      const entries = await prof.stop();
      prof.destroy();
      breakdowns.push(
        `${rows.at(-1)![0]} ${rows.at(-1)![1]}: ` +
          entries.map((e) => `${e.label} ${e.ms.toFixed(3)} ms (×${e.count})`).join(", "),
      );
    }
  }
  for (const x of [q, k, v, dO]) x.release();
  gpu.pool.clear();
}

for (const b of breakdowns) console.log(b);
console.log(
  `\n| B,H,N,d | variant | fwd ms | fwd+bwd ms | Mtok/s (f+b) | fwd TFLOP/s | f+b TFLOP/s | % fp32 peak (f+b) | wall f+b ms | val. rel RMS | timing |`,
);
console.log(`|---|---|---|---|---|---|---|---|---|---|---|`);
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
gpu.destroy();
