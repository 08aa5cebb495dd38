// Decoding speed: `generate` (recurrent: one prefill forward over the prompt, then one forward
// per new token continuing each layer's attention state) against rerunning the full forward on
// the growing sequence per token (lib/testing/rerun_decoding.ts), greedy. First validates on
// the tiny test model that both pick the same tokens (prompt 60 + 8 new, both model kinds),
// then times each variant. Every new token needs its logits on the host (sampling), so a token
// costs at least one readback (≈ 11 ms on Deno's built-in WebGPU). Decode tokens/s =
// (m − 1) / (t(m) − t(1)), t(k) the wall time of a call generating k tokens: the parameter
// upload and the prefill cancel out; the rerun figure is the mean over the same positions.
// Usage:
//   deno run -A bench/generate_bench.ts [--gpu deno|dawn|auto] [--rerun 1 (0: recurrent only)]
//     [--variants "tiny:128:32,tiny:1024:32"]
//   a variant is preset:promptTokens:newTokens
import {
  generate,
  type GenerateOptions,
  type Gpu,
  initParams,
  openDevice,
  resolveModelConfig,
} from "../mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { tinyModelConfig } from "../lib/testing/tiny_model.ts";
import { rerunDecoding } from "../lib/testing/rerun_decoding.ts";
import { flag } from "./_timing.ts";

const args = Deno.args;
const gpu = await openDevice({ gpu: flag(args, "gpu", "auto") as "auto" });
const rerun = flag(args, "rerun", "1") === "1";
const variants = flag(args, "variants", "tiny:128:32,tiny:1024:32").split(",");
console.log(`device: ${gpu.adapterName} (${gpu.implementation})`);

type Decode = (gpu: Gpu, options: GenerateOptions) => Promise<number[]>;

function randomPrompt(length: number, vocab: number): number[] {
  const rng = new Rng(length);
  return Array.from({ length }, () => rng.int(vocab));
}

// ---- validation: recurrent decoding picks the rerun's tokens -----------------------------------
for (const kind of ["tnl", "linear"] as const) {
  const model = tinyModelConfig({ model: kind, seqLen: 32, initStd: 0.5 });
  const o = {
    model,
    params: initParams(model, 9),
    prompt: randomPrompt(60, model.vocabSize),
    maxTokens: 8,
    temperature: 0,
    seed: 1,
  };
  const a = await generate(gpu, o), b = await rerunDecoding(gpu, o);
  if (a.join() !== b.join()) throw new Error(`${kind}: recurrent ${a} ≠ rerun ${b}`);
  console.log(`validation ${kind}: recurrent and rerun decoding pick the same 8 tokens`);
}

/** Wall ms of one call generating `maxTokens` tokens (waits for the GPU). */
async function timeCall(decode: Decode, o: GenerateOptions, maxTokens: number): Promise<number> {
  const t0 = performance.now();
  await decode(gpu, { ...o, maxTokens });
  await gpu.commands.finish();
  return performance.now() - t0;
}

/** Decode tokens/s and the ids of a full call. */
async function decodeRate(decode: Decode, o: GenerateOptions) {
  const ids = await decode(gpu, o); // warm-up: pipelines, pool
  const one = await timeCall(decode, o, 1);
  const all = await timeCall(decode, o, o.maxTokens);
  return { ids, tokensPerS: (o.maxTokens - 1) / ((all - one) / 1000), firstMs: one };
}

// ---- timing ------------------------------------------------------------------------------------
const rows: string[] = [];
for (const v of variants) {
  const [preset, promptLength, newTokens] = v.split(":");
  try {
    const model = resolveModelConfig({}, { preset });
    const maxTokens = Number(newTokens);
    if (!(Number.isInteger(maxTokens) && maxTokens >= 2)) {
      throw new Error(`newTokens ${newTokens} must be an integer ≥ 2`);
    }
    const o: GenerateOptions = {
      model,
      params: initParams(model, 1),
      prompt: randomPrompt(Number(promptLength), model.vocabSize),
      maxTokens,
      temperature: 0,
      seed: 1,
    };
    const rec = await decodeRate(generate, o);
    let tail = "| – | – | – |";
    if (rerun) {
      const ref = await decodeRate(rerunDecoding, o);
      const same = rec.ids.findIndex((id, i) => id !== ref.ids[i]);
      tail = `| ${ref.tokensPerS.toFixed(1)} | ${(rec.tokensPerS / ref.tokensPerS).toFixed(1)}× | ${
        same < 0 ? "yes" : `from token ${same}`
      } |`;
    }
    rows.push(
      `| ${v} | ${model.layers}×${model.dim} | ${rec.firstMs.toFixed(0)} | ${
        rec.tokensPerS.toFixed(1)
      } ${tail}`,
    );
  } catch (e) {
    rows.push(`| ${v} | failed: ${(e as Error).message.slice(0, 120)} |`);
  } finally {
    await gpu.commands.finish(); // recorded work may still use released buffers
    gpu.pool.clear();
  }
  console.log(rows.at(-1));
}
console.log(
  "\n| variant | L×D | upload+prefill+1 ms | recurrent tok/s | rerun tok/s | speedup | same ids |",
);
console.log("|---|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
gpu.destroy();
