// Memory-bound model ops (SRMSNorm, gated norm, feature maps, GLU backward, embedding,
// cross-entropy, AdamW, grad norm): each op is first checked against its float64 reference on
// small odd sizes, then timed at model sizes; GB/s counts the bytes each op must move at least.
// Usage:
//   deno run -A bench/model_ops_table.ts [--gpu deno|dawn|auto] [--tokens 16384] [--dim 2048]
//     [--vocab 50257] [--ce-rows 4096] [--adam-m 100]
import {
  adamwStep,
  crossEntropyBackward,
  crossEntropyForward,
  downloadTensors,
  embeddingBackward,
  embeddingForward,
  embeddingScatterPlan,
  featureMapBackward,
  featureMapForward,
  gluBackward,
  gradNormClip,
  normGateBackward,
  normGateForward,
  openDevice,
  srmsnormBackward,
  srmsnormForward,
  type Tensor,
  uploadTensor,
} from "../mod.ts";
import { randomArray } from "../lib/testing/reference.ts";
import { closeStats } from "../lib/testing/assert_close.ts";
import { srmsnormBackwardReference, srmsnormReference } from "../lib/ops/srmsnorm/reference.ts";
import { normGateBackwardReference } from "../lib/ops/srmsnorm/reference.ts";
import { elu1BackwardReference } from "../lib/ops/activation/reference.ts";
import { embeddingBackwardReference } from "../lib/ops/embedding/reference.ts";
import { crossEntropyReference } from "../lib/ops/cross_entropy/reference.ts";
import { adamwReference } from "../lib/ops/adamw/reference.ts";
import { flag, timeGpu } from "./_timing.ts";

const args = Deno.args;
const gpu = await openDevice({ gpu: flag(args, "gpu", "auto") as "auto" });
const tokens = Number(flag(args, "tokens", "16384"));
const dim = Number(flag(args, "dim", "2048"));
const vocab = Number(flag(args, "vocab", "50257"));
const ceRows = Number(flag(args, "ce-rows", "4096"));
const adamN = Math.round(Number(flag(args, "adam-m", "100")) * 1e6);
console.log(`device: ${gpu.adapterName} (${gpu.implementation})`);

const up = (n: number, seed: number, shape: number[], lo = -1, hi = 1) =>
  uploadTensor(gpu, randomArray(n, seed, lo, hi), shape);
function check(name: string, got: ArrayLike<number>, ref: ArrayLike<number>, tol: number): string {
  const s = closeStats(got, ref);
  if (s.nonFinite > 0 || !(s.relRms <= tol)) throw new Error(`${name} wrong: ${JSON.stringify(s)}`);
  return s.relRms.toExponential(1);
}

// ---- validation on small odd sizes -----------------------------------------------------------
const valid: Record<string, string> = {};
{
  const [r, d] = [37, 1001];
  const x = randomArray(r * d, 1, -2, 2),
    u = randomArray(r * d, 2, -3, 3),
    dy = randomArray(r * d, 3);
  const [tx, tu, tdy] = [x, u, dy].map((a) => uploadTensor(gpu, a, [r, d]));
  const f = await srmsnormForward(gpu, tx);
  const b = await srmsnormBackward(gpu, { x: tx, rstd: f.rstd, dy: tdy });
  const g = await normGateForward(gpu, { o: tx, u: tu });
  const gb = await normGateBackward(gpu, { o: tx, u: tu, rstd: g.rstd, dy: tdy });
  const e = await featureMapBackward(gpu, { x: tx, dy: tdy }, { map: "elu1" });
  const [gy, gdx, gdo, ge] = await downloadTensors(gpu, [f.y, b.dx, gb.dO, e]);
  const dims = { rows: r, d, eps: 1e-6 };
  valid.srmsnorm = check("srmsnorm", gy, srmsnormReference(x, dims).y, 1e-5);
  valid.srmsnorm_bwd = check("srmsnorm bwd", gdx, srmsnormBackwardReference(x, dy, dims).dx, 1e-5);
  valid.norm_gate_bwd = check(
    "norm gate bwd",
    gdo,
    normGateBackwardReference(x, u, dy, { ...dims, act: "none" }).dO,
    1e-5,
  );
  valid.elu1_bwd = check("elu1 bwd", ge, elu1BackwardReference(x, dy), 1e-5);
  const ids = Uint32Array.from({ length: r }, (_, i) => (i * i) % 53);
  const plan = embeddingScatterPlan(gpu, ids, { vocab: 53 });
  const [gw] = await downloadTensors(gpu, [await embeddingBackward(gpu, { dy: tdy, plan })]);
  valid.embedding_bwd = check(
    "embedding bwd",
    gw,
    embeddingBackwardReference(dy, ids, { vocab: 53, d }),
    1e-5,
  );
  const tgt = Int32Array.from({ length: r }, (_, i) => (i * 31) % d);
  const ttgt = uploadTensor(gpu, tgt, [r], "i32");
  const ce = await crossEntropyForward(gpu, { logits: tx, targets: ttgt });
  const dl = await crossEntropyBackward(gpu, { logits: tx, targets: ttgt, ...ce });
  const [gdl] = await downloadTensors(gpu, [dl]);
  valid.cross_entropy = check(
    "cross-entropy bwd",
    gdl,
    crossEntropyReference(x, tgt, { rows: r, vocab: d }).dlogits,
    1e-5,
  );
  const n = 70001, p = randomArray(n, 5), gr = randomArray(n, 6);
  const [tp, tg, tm, tv] = [p, gr, new Float32Array(n), new Float32Array(n)].map((a) =>
    uploadTensor(gpu, a, [n])
  );
  const h = { lr: 1e-3, weightDecay: 0.1, step: 1, beta1: 0.9, beta2: 0.95, eps: 1e-8 };
  await adamwStep(gpu, { param: tp, grad: tg, m: tm, v: tv }, h);
  const [gp] = await downloadTensors(gpu, [tp]);
  valid.adamw = check(
    "adamw",
    gp,
    adamwReference({ param: p, grad: gr, m: new Float64Array(n), v: new Float64Array(n) }, h).param,
    1e-6,
  );
}

// ---- timing -----------------------------------------------------------------------------------
const rows: string[][] = [];
async function time(
  name: string,
  shape: string,
  bytes: number,
  step: () => Promise<unknown>,
  check = "",
) {
  const t = await timeGpu(gpu, async () => void (await step()), { iterations: 10 });
  rows.push([
    name,
    shape,
    t.ms.toFixed(3),
    (bytes / (t.ms * 1e-3) / 1e9).toFixed(0),
    t.wallMs.toFixed(3),
    check,
    t.method,
  ]);
}
const f4 = 4;
{
  const [r, d] = [tokens, dim], rd = r * d;
  const x = up(rd, 11, [r, d]), u = up(rd, 12, [r, d]), dy = up(rd, 13, [r, d]);
  const f = await srmsnormForward(gpu, x);
  const g = await normGateForward(gpu, { o: x, u });
  const shape = `${r}×${d}`;
  const outs: Tensor[] = [];
  await time(
    "srmsnorm fwd",
    shape,
    2 * rd * f4,
    () => srmsnormForward(gpu, x, { out: f.y }),
    valid.srmsnorm,
  );
  const dx = await srmsnormBackward(gpu, { x, rstd: f.rstd, dy });
  await time(
    "srmsnorm bwd",
    shape,
    3 * rd * f4,
    () => srmsnormBackward(gpu, { x, rstd: f.rstd, dy }, { out: dx.dx }),
    valid.srmsnorm_bwd,
  );
  await time(
    "norm·gate fwd",
    shape,
    3 * rd * f4,
    () => normGateForward(gpu, { o: x, u }, { out: g.y }),
  );
  const gb = await normGateBackward(gpu, { o: x, u, rstd: g.rstd, dy });
  await time(
    "norm·gate bwd",
    shape,
    5 * rd * f4,
    () => normGateBackward(gpu, { o: x, u, rstd: g.rstd, dy }, { dO: gb.dO, dU: gb.dU }),
    valid.norm_gate_bwd,
  );
  await time(
    "elu+1 fwd",
    shape,
    2 * rd * f4,
    () => featureMapForward(gpu, x, { map: "elu1", out: f.y }),
  );
  await time(
    "elu+1 bwd",
    shape,
    3 * rd * f4,
    () => featureMapBackward(gpu, { x, dy }, { map: "elu1", out: f.y }),
    valid.elu1_bwd,
  );
  await time(
    "silu fwd",
    shape,
    2 * rd * f4,
    () => featureMapForward(gpu, x, { map: "silu", out: f.y }),
  );
  await time(
    "GLU bwd",
    shape,
    5 * rd * f4,
    () => gluBackward(gpu, { a: x, b: u, dy }, { da: gb.dO, db: gb.dU }),
  );
  // Embedding: ids with a text-like skew (a few ids very frequent).
  const ids = Uint32Array.from(
    { length: r },
    (_, i) => Math.floor(vocab * ((i * 0.6180339887) % 1) ** 3),
  );
  const w = up(vocab * d, 14, [vocab, d]);
  const tids = uploadTensor(gpu, ids, [r], "u32");
  const emb = await embeddingForward(gpu, { weight: w, ids: tids });
  await time(
    "embedding gather",
    `${r} of ${vocab}×${d}`,
    2 * rd * f4,
    () => embeddingForward(gpu, { weight: w, ids: tids }, { out: emb }),
  );
  const plan = embeddingScatterPlan(gpu, ids, { vocab });
  const dw = await embeddingBackward(gpu, { dy, plan });
  await time(
    "embedding scatter-add (+=)",
    `${r} → ${vocab}×${d} (${plan.segments} ids)`,
    (rd + 2 * plan.segments * d) * f4,
    () => embeddingBackward(gpu, { dy, plan }, { dweight: dw, accumulate: true }),
    valid.embedding_bwd,
  );
  outs.push(x, u, dy, w, emb, dw);
  for (const t of outs) t.release();
}
{
  const logits = up(ceRows * vocab, 21, [ceRows, vocab], -5, 5);
  const tgt = uploadTensor(gpu, Int32Array.from({ length: ceRows }, (_, i) => (i * 7919) % vocab), [
    ceRows,
  ], "i32");
  const ce = await crossEntropyForward(gpu, { logits, targets: tgt });
  const shape = `${ceRows}×${vocab}`;
  await time(
    "cross-entropy fwd",
    shape,
    ceRows * vocab * f4,
    () => crossEntropyForward(gpu, { logits, targets: tgt }),
  );
  const dl = await crossEntropyBackward(gpu, { logits, targets: tgt, ...ce });
  await time(
    "cross-entropy bwd",
    shape,
    2 * ceRows * vocab * f4,
    () => crossEntropyBackward(gpu, { logits, targets: tgt, ...ce }, { out: dl }),
    valid.cross_entropy,
  );
  logits.release();
  dl.release();
}
{
  const [p, g, m, v] = [31, 32, 33, 34].map((s) => up(adamN, s, [adamN], -0.01, 0.01));
  const clip = await gradNormClip(gpu, [g], { maxNorm: 1 });
  await time(
    "grad norm + clip",
    `${(adamN / 1e6).toFixed(0)}M`,
    adamN * f4,
    () => gradNormClip(gpu, [g], { maxNorm: 1 }).then((t) => t.release()),
  );
  await time(
    "AdamW step",
    `${(adamN / 1e6).toFixed(0)}M`,
    7 * adamN * f4,
    () =>
      adamwStep(gpu, { param: p, grad: g, m, v, clip }, { lr: 1e-4, step: 3, weightDecay: 0.1 }),
    valid.adamw,
  );
}
console.log(`\n| op | shape | ms | GB/s | wall ms | val. rel RMS | timing |`);
console.log(`|---|---|---|---|---|---|---|`);
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
gpu.destroy();
