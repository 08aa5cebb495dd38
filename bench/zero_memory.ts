// GPU memory per rank at each ZeRO stage, measured: W Worker ranks (default DP = 2) train a
// few steps of a model at every stage; the GPU pool's bytes in use after a step and its peak
// during the step are reported next to the bytes the ZeRO layout assigns to a rank
// (params + grads + AdamW moments, f32). Every stage must report the same losses (checked
// first). Usage:
//   deno run -A bench/zero_memory.ts [--world 2] [--sp 1] [--preset 125m] [--dim 256]
//     [--layers 4] [--seq 128] [--batch 2] [--steps 2] [--gpu deno|dawn|auto]
import { resolveModelConfig } from "../lib/model/config.ts";
import { parameterSpecs } from "../lib/model/params.ts";
import { spawnWorkerRanks } from "../lib/dist/worker_ranks.ts";
import { backwardOrder, bucketUnits, layerUnits, ZeroLayout } from "../lib/train/zero_layout.ts";
import { DEFAULT_BUCKET_MIB } from "../lib/train/zero_driver.ts";
import { flag } from "./_timing.ts";
import type { ZeroMemoryArgs, ZeroMemoryResult } from "./_zero_memory_rank.ts";

const args = Deno.args;
const world = Number(flag(args, "world", "2")), sp = Number(flag(args, "sp", "1"));
Deno.env.set("LASP_GPU", flag(args, "gpu", Deno.env.get("LASP_GPU") ?? "auto"));
const preset = flag(args, "preset", "");
const overrides: Record<string, unknown> = preset ? {} : {
  tokenizer: "bytes",
  vocabSize: 256,
  dim: Number(flag(args, "dim", "256")),
  heads: 4,
  layers: Number(flag(args, "layers", "4")),
  gluDim: 2 * Number(flag(args, "dim", "256")),
};
overrides.seqLen = Number(flag(args, "seq", "128"));
const model = resolveModelConfig(overrides, preset ? { preset } : {});
const stages = [0, 1, 2, 3] as const;
const rankArgs: ZeroMemoryArgs = {
  model: overrides,
  batch: Number(flag(args, "batch", "2")) * (world / sp),
  steps: Number(flag(args, "steps", "2")),
  stages: [...stages],
};
if (preset) rankArgs.model = { ...overrides, ...resolveModelConfig({}, { preset }) };
const results = await spawnWorkerRanks<ZeroMemoryResult>({
  world,
  sp,
  module: new URL("./_zero_memory_rank.ts", import.meta.url),
  exportName: "zeroMemory",
  args: rankArgs,
  timeoutMs: 600_000,
});
const ref = results[0][0].losses;
for (const [r, res] of results.entries()) {
  for (const s of stages) {
    const worst = Math.max(...res[s].losses.map((l, i) => Math.abs(l - ref[i]) / ref[i]));
    if (!(worst < 1e-5)) {
      throw new Error(`rank ${r} ZeRO-${s}: losses ${res[s].losses} differ from ZeRO-0 ${ref}`);
    }
  }
}
const flat = parameterSpecs(model).map((p) => ({
  name: p.name,
  size: p.shape.reduce((a, b) => a * b, 1),
  decay: p.decay,
}));
const count = flat.reduce((n, p) => n + p.size, 0);
const MiB = 1 << 20, mib = (b: number) => (b / MiB).toFixed(1);
console.log(
  `\nGPU memory per rank, W=${world} (SP=${sp}, DP=${world / sp}), ${
    (count / 1e6).toFixed(2)
  }M parameters (${mib(4 * count)} MiB f32), batch ${rankArgs.batch} × ${model.seqLen} tokens`,
);
console.log(
  "| ZeRO | layout: params+grads+moments MiB | measured in use after step MiB | measured peak MiB (rank 0, max over ranks) |",
);
console.log("|---|---|---|---|");
for (const s of stages) {
  const units = s === 3
    ? layerUnits(flat)
    : bucketUnits(backwardOrder(flat), DEFAULT_BUCKET_MIB * MiB);
  const m = new ZeroLayout(units, world, 0).memory(s);
  const peaks = results.map((r) => r[s].peak), inUse = results.map((r) => r[s].inUse);
  console.log(
    `| ${s} | ${mib(m.paramBytes)} + ${mib(m.gradBytes)} + ${mib(m.momentBytes)} = ${
      mib(m.totalBytes)
    } | ${mib(inUse[0])} (max ${mib(Math.max(...inUse))}) | ${mib(peaks[0])} (max ${
      mib(Math.max(...peaks))
    }) |`,
  );
}
