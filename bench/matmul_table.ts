// Matmul throughput table: validates each tile variant against float64 on a small odd
// problem, then times square products. Usage:
//   deno run -A bench/matmul_table.ts [--gpu deno|dawn|auto] [--sizes 1024,4096,8192]
import { downloadTensor, matmul, openDevice, uploadTensor } from "../mod.ts";
import type { MatmulTile } from "../shaders/matmul.ts";
import { matmulReference, randomArray } from "../lib/testing/reference.ts";
import { closeStats } from "../lib/testing/assert_close.ts";
import { flag, timeGpu } from "./_timing.ts";

const args = Deno.args;
const gpu = await openDevice({ gpu: flag(args, "gpu", "auto") as "auto" });
const sizes = flag(args, "sizes", "256,512").split(",").map(Number);
const variants: MatmulTile[] = [
  { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 },
  { bm: 128, bn: 128, bk: 16, tm: 8, tn: 8 },
  { bm: 128, bn: 128, bk: 32, tm: 8, tn: 8 },
  { bm: 128, bn: 64, bk: 16, tm: 8, tn: 8 },
  { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 },
];
console.log(`device: ${gpu.adapterName} (${gpu.implementation})`);

const rows: string[][] = [];
for (const tile of variants) {
  const name = `${tile.bm}x${tile.bn}x${tile.bk}/${tile.tm}x${tile.tn}`;
  // validation: an odd size (bounds-checked path) and a tile multiple (vec4 path)
  let worst = 0;
  for (const [m, n, k] of [[131, 77, 259], [tile.bm * 2, tile.bn * 2, tile.bk * 4]]) {
    const a = randomArray(m * k, m), b = randomArray(k * n, n);
    const ta = uploadTensor(gpu, a, [m, k]), tb = uploadTensor(gpu, b, [k, n]);
    const got = await downloadTensor(gpu, await matmul(gpu, ta, tb, { tile }));
    const s = closeStats(got, matmulReference(a, b, { m, n, k }));
    if (s.nonFinite > 0 || s.relRms > 1e-5) {
      throw new Error(`${name} wrong at ${m}x${n}x${k}: ${JSON.stringify(s)}`);
    }
    worst = Math.max(worst, s.relRms);
    ta.release();
    tb.release();
  }
  for (const n of sizes) {
    const a = uploadTensor(gpu, randomArray(n * n, 3), [n, n]);
    const b = uploadTensor(gpu, randomArray(n * n, 4), [n, n]);
    const c = await matmul(gpu, a, b, { tile });
    const t = await timeGpu(gpu, async () => {
      await matmul(gpu, a, b, { tile, out: c });
    }, { iterations: n >= 4096 ? 10 : 20 });
    const tflops = (2 * n ** 3) / (t.ms * 1e-3) / 1e12;
    rows.push([
      name,
      `${n}³`,
      t.ms.toFixed(3),
      (tflops * 1e3).toFixed(1),
      tflops.toFixed(2),
      t.wallMs.toFixed(3),
      ((2 * n ** 3) / (t.wallMs * 1e-3) / 1e12).toFixed(2),
      worst.toExponential(1),
      t.method,
    ]);
    for (const x of [a, b, c]) x.release();
  }
}
console.log(
  `\n| tile | size | ms | GFLOP/s | TFLOP/s | wall ms | wall TFLOP/s | val. rel RMS | timing |`,
);
console.log(`|---|---|---|---|---|---|---|---|---|`);
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
gpu.destroy();
