/**
 * The whole model's loss in float64 on the CPU, built from the ops' float64 references: the
 * definition the GPU forward and backward are checked against (the backward by central
 * differences of this loss). Tiny sizes only: the products are plain triple loops.
 * @module
 */
import { matmulReference, siluReference } from "../testing/reference.ts";
import { embeddingReference } from "../ops/embedding/reference.ts";
import { normGateReference, srmsnormReference } from "../ops/srmsnorm/reference.ts";
import { elu1Reference } from "../ops/activation/reference.ts";
import { headsToTokensReference, splitQkvuReference } from "../ops/heads/reference.ts";
import { linearAttentionReference } from "../ops/linear_attention/reference.ts";
import { crossEntropyReference } from "../ops/cross_entropy/reference.ts";
import type { ModelConfig } from "./config.ts";
import { decayRates } from "./decay.ts";
import { blockParamNames } from "./block.ts";

/** Parameters by checkpoint name (row-major, shapes as in `parameterSpecs`). */
export type ReferenceParams = Record<string, ArrayLike<number>>;

/** x · Wᵀ for x [rows, in], W [out, in]. */
function linearRef(x: ArrayLike<number>, w: ArrayLike<number>, rows: number, out: number) {
  return matmulReference(x, w, { m: rows, n: out, k: x.length / rows, transB: true });
}

function addRef(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  return Float64Array.from(a, (v, i) => v + b[i]);
}

/** Mean cross-entropy of the model on whole sequences ([batch, N] ids), in float64. */
export function modelLossReference(
  config: ModelConfig,
  params: ReferenceParams,
  tokens: { inputs: ArrayLike<number>; targets: ArrayLike<number>; batch: number },
): number {
  const logits = modelLogitsReference(config, params, tokens);
  const rows = tokens.inputs.length;
  return crossEntropyReference(logits, tokens.targets, { rows, vocab: config.vocabSize }).mean;
}

/** Logits [batch·N, vocab] of the model on whole sequences ([batch, N] ids), in float64. */
export function modelLogitsReference(
  config: ModelConfig,
  params: ReferenceParams,
  tokens: { inputs: ArrayLike<number>; batch: number },
): Float64Array {
  const c = config;
  const { batch } = tokens;
  const length = tokens.inputs.length / batch, rows = batch * length;
  const D = c.dim, eps = c.normEps;
  const dims = { batch, length, heads: c.heads, headDim: c.headDim };
  const phi = c.featureMap === "silu" ? siluReference : elu1Reference;
  const norm = (x: ArrayLike<number>, gain?: string) =>
    srmsnormReference(x, { rows, d: D, eps, gain: gain ? params[gain] : undefined }).y;
  const decays = decayRates(c);
  let x: Float64Array = embeddingReference(params["embed_tokens.weight"], tokens.inputs, D);
  for (let l = 0; l < c.layers; l++) {
    const names = blockParamNames(l);
    const gain = (name: string) => (c.normGain ? name : undefined);
    const h1 = norm(x, gain(names.tokenNorm));
    const parts = splitQkvuReference(linearRef(h1, params[names.qkvu], rows, 4 * D), dims);
    const { o } = linearAttentionReference({
      q: phi(parts.q),
      k: phi(parts.k),
      v: parts.v,
      decay: decays[l],
      shape: { batch, heads: c.heads, length, dk: c.headDim, dv: c.headDim },
    });
    const y = normGateReference(headsToTokensReference(o, dims), parts.u, {
      rows,
      d: D,
      eps,
      act: c.gateActivation,
    }).y;
    const x2 = addRef(x, linearRef(y, params[names.out], rows, D));
    const h2 = norm(x2, gain(names.channelNorm));
    const a = linearRef(h2, params[names.l1], rows, c.gluDim);
    const b = linearRef(h2, params[names.l2], rows, c.gluDim);
    const g = Float64Array.from(a, (v, i) => v * b[i]);
    x = addRef(x2, linearRef(g, params[names.l3], rows, D));
  }
  const hf = norm(x, c.normGain ? "final_norm.weight" : undefined);
  const head = params[c.tieEmbeddings ? "embed_tokens.weight" : "lm_head.weight"];
  return linearRef(hf, head, rows, c.vocabSize);
}
