/**
 * One block of TransNormerLLM / the Linear Transformer (docs LASP.md §5), forward and
 * backward side by side, on this rank's slice of the sequence (n = N/T tokens):
 *
 *     h1 = SRMSNorm(x)                      q, k, v, u = split(h1 · Wqkvuᵀ)
 *     o  = LASP(φ(q), φ(k), v; λ_layer)     y = SRMSNorm(o) ⊙ act(u)
 *     x2 = x + y · Woutᵀ
 *     h2 = SRMSNorm(x2)                     x3 = x2 + (h2·W1ᵀ ⊙ h2·W2ᵀ) · W3ᵀ
 *
 * Accumulation rule (llm.c): parameter gradients are added to (`+=`, so micro-batches
 * accumulate), activation gradients are written. Memory: the forward keeps only what is
 * costly to recompute (q, k, v before and after φ, u, o, x2, and the two GLU branches); the
 * backward recomputes h1, h2, y and g with one memory-bound kernel each, and releases every
 * saved activation as soon as it has used it. The block input `x` belongs to the caller. Each
 * block ends with a submit, so the GPU starts on a block while the next one is recorded and
 * the buffers it released serve any later use (a buffer released while recorded work still
 * uses it serves only GPU-written outputs until the next submit: lib/gpu/pool.ts).
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { LaspAttention } from "../lasp/attention.ts";
import { matmul } from "../ops/matmul.ts";
import { add, mul } from "../ops/elementwise.ts";
import { srmsnormBackward, srmsnormForward } from "../ops/srmsnorm/srmsnorm.ts";
import { normGateBackward, normGateForward } from "../ops/srmsnorm/norm_gate.ts";
import {
  featureMapBackward,
  featureMapForward,
  gluBackward,
} from "../ops/activation/activation.ts";
import { headsToTokens, mergeQkvu, splitQkvu, tokensToHeads } from "../ops/heads/heads.ts";
import type { ModelConfig } from "./config.ts";

/** Parameters (or their gradients) of one block; gains only with `normGain`. */
export interface BlockParams {
  /** [D] */
  tokenNorm?: Tensor;
  /** [4D, D] */
  qkvu: Tensor;
  /** [D, D] */
  out: Tensor;
  /** [D] */
  channelNorm?: Tensor;
  /** [G, D] */
  l1: Tensor;
  /** [G, D] */
  l2: Tensor;
  /** [D, G] */
  l3: Tensor;
}

/** Checkpoint names of block `l`'s parameters, by {@linkcode BlockParams} field. */
export function blockParamNames(l: number): Record<keyof BlockParams, string> {
  const p = `layers.${l}`;
  return {
    tokenNorm: `${p}.token_norm.weight`,
    qkvu: `${p}.token_mixer.qkvu_proj.weight`,
    out: `${p}.token_mixer.out_proj.weight`,
    channelNorm: `${p}.channel_norm.weight`,
    l1: `${p}.channel_mixer.l1.weight`,
    l2: `${p}.channel_mixer.l2.weight`,
    l3: `${p}.channel_mixer.l3.weight`,
  };
}

/** What a block needs besides its input. */
export interface BlockContext {
  /** Device. */
  gpu: Gpu;
  /** Model configuration. */
  config: ModelConfig;
  /** Sequence-parallel attention of this rank (plain kernel when T = 1). */
  attention: LaspAttention;
  /** Layer index l (tags LASP messages). */
  layer: number;
  /** λ per head of this layer. */
  decay: readonly number[];
  /** The block's parameters. */
  params: BlockParams;
  /** Gradients, added to by the backward. */
  grads: BlockParams;
}

/**
 * Activations the backward needs. The cheap, memory-bound ones (the norm outputs h1 and h2,
 * the gated output y, the GLU product g) are not kept: the backward recomputes them (same
 * kernels, same inputs, so the same bits), which saves 4·D + G floats per token and layer.
 */
export interface BlockSaved {
  /** Sequences B. */
  batch: number;
  /** Tokens n of this rank. */
  length: number;
  /** [B, H, n, hd] q before φ */
  qRaw: Tensor;
  /** [B, H, n, hd] k before φ */
  kRaw: Tensor;
  /** [B, H, n, hd] φ(q), kept by LASP too */
  q: Tensor;
  /** [B, H, n, hd] φ(k) */
  k: Tensor;
  /** [B, H, n, hd] */
  v: Tensor;
  /** [B, n, D] gate */
  u: Tensor;
  /** [B, n, D] attention output, token layout */
  o: Tensor;
  /** [B, n, D] residual stream after the token mixer */
  x2: Tensor;
  /** [B·n, G] first GLU branch */
  a: Tensor;
  /** [B·n, G] second GLU branch */
  b: Tensor;
}

/** `x · Wᵀ` for x [rows, in] and W [out, in] (PyTorch's Linear). */
export function linear(gpu: Gpu, x: Tensor, w: Tensor): Promise<Tensor> {
  return matmul(gpu, x, w, { transB: true }); // [rows, out]
}

/** Backward of {@linkcode linear}: dW += dyᵀ·x; returns dx = dy·W (or adds it to `dxInto`). */
export async function linearBackward(
  gpu: Gpu,
  saved: { x: Tensor; w: Tensor; dy: Tensor; dw: Tensor },
  options: { dxInto?: Tensor } = {},
): Promise<Tensor> {
  const { x, w, dy, dw } = saved;
  await matmul(gpu, dy, x, { transA: true, out: dw, accumulate: true }); // [out, in]
  if (options.dxInto) {
    return await matmul(gpu, dy, w, { out: options.dxInto, accumulate: true }); // [rows, in]
  }
  return await matmul(gpu, dy, w); // [rows, in]
}

function releaseAll(...tensors: Tensor[]): void {
  for (const t of tensors) t.release();
}

/** Block forward; returns x3 [B, n, D] and, with `needsGrad`, what the backward needs. */
export async function blockForward(
  ctx: BlockContext,
  x: Tensor, // [B, n, D]
  options: { needsGrad: boolean },
): Promise<{ out: Tensor; saved?: BlockSaved }> {
  const { gpu, config: c, params: P } = ctx;
  const [batch, length, D] = x.shape;
  const rows = batch * length;
  const dims = { batch, length, heads: c.heads, headDim: c.headDim };
  const eps = c.normEps;
  // token mixer
  const n1 = await srmsnormForward(gpu, x, { gain: P.tokenNorm, eps }); // h1 [B, n, D]
  const qkvu = await linear(gpu, n1.y.reshape([rows, D]), P.qkvu); // [B·n, 4D]
  releaseAll(n1.y, n1.rstd);
  const parts = await splitQkvu(gpu, qkvu.reshape([batch, length, 4 * D]), dims);
  qkvu.release();
  const q = await featureMapForward(gpu, parts.q, { map: c.featureMap }); // [B, H, n, hd]
  const k = await featureMapForward(gpu, parts.k, { map: c.featureMap }); // [B, H, n, hd]
  const { o: oHeads } = await ctx.attention.forward(gpu, {
    q,
    k,
    v: parts.v,
    decay: ctx.decay,
    shape: { batch, heads: c.heads, length, dk: c.headDim, dv: c.headDim },
    layer: ctx.layer,
    needsGrad: options.needsGrad,
  }); // [B, H, n, hd]
  const o = await headsToTokens(gpu, oHeads, dims); // [B, n, D]
  oHeads.release();
  const gate = await normGateForward(gpu, { o, u: parts.u }, { act: c.gateActivation, eps }); // y
  const attn = await linear(gpu, gate.y.reshape([rows, D]), P.out); // [B·n, D]
  releaseAll(gate.y, gate.rstd);
  const x2 = await add(gpu, x, attn); // [B, n, D]
  attn.release();
  // channel mixer
  const n2 = await srmsnormForward(gpu, x2, { gain: P.channelNorm, eps }); // h2 [B, n, D]
  const h2 = n2.y.reshape([rows, D]);
  const a = await linear(gpu, h2, P.l1); // [B·n, G]
  const b = await linear(gpu, h2, P.l2); // [B·n, G]
  releaseAll(n2.y, n2.rstd);
  const g = await mul(gpu, a, b); // [B·n, G]
  const mlp = await linear(gpu, g, P.l3); // [B·n, D]
  g.release();
  const out = await add(gpu, x2, mlp.reshape([batch, length, D])); // [B, n, D]
  mlp.release();
  const saved: BlockSaved = {
    batch,
    length,
    qRaw: parts.q,
    kRaw: parts.k,
    q,
    k,
    v: parts.v,
    u: parts.u,
    o,
    x2,
    a,
    b,
  };
  if (options.needsGrad) {
    gpu.commands.submit(); // see the module doc
    return { out, saved };
  }
  releaseAll(...Object.values(saved).filter((t): t is Tensor => typeof t === "object"));
  gpu.commands.submit();
  return { out };
}

/** Block backward: adds to the parameter gradients, returns dx [B, n, D]. */
export async function blockBackward(
  ctx: BlockContext,
  x: Tensor, // [B, n, D] the block input
  saved: BlockSaved,
  dOut: Tensor, // [B, n, D]
): Promise<Tensor> {
  const { gpu, config: c, params: P, grads: dP } = ctx;
  const s = saved;
  const { batch, length } = s;
  const rows = batch * length, D = c.dim;
  const dims = { batch, length, heads: c.heads, headDim: c.headDim };
  const eps = c.normEps;
  const d3 = dOut.reshape([rows, D]);
  // channel mixer
  const g = await mul(gpu, s.a, s.b); // [B·n, G] recomputed
  const dg = await linearBackward(gpu, { x: g, w: P.l3, dy: d3, dw: dP.l3 }); // [B·n, G]
  g.release();
  const { da, db } = await gluBackward(gpu, { a: s.a, b: s.b, dy: dg }); // [B·n, G] each
  releaseAll(dg, s.a, s.b);
  const n2 = await srmsnormForward(gpu, s.x2, { gain: P.channelNorm, eps }); // h2 recomputed
  const h2 = n2.y.reshape([rows, D]);
  const dh2 = await linearBackward(gpu, { x: h2, w: P.l1, dy: da, dw: dP.l1 }); // [B·n, D]
  await linearBackward(gpu, { x: h2, w: P.l2, dy: db, dw: dP.l2 }, { dxInto: dh2 });
  releaseAll(da, db, n2.y);
  const dn2 = await srmsnormBackward(
    gpu,
    { x: s.x2, rstd: n2.rstd, dy: dh2.reshape(s.x2.shape) },
    { gain: P.channelNorm, dgain: dP.channelNorm, accumulate: !!P.channelNorm },
  );
  const dx2 = await add(gpu, dn2.dx, dOut); // [B, n, D]
  releaseAll(dn2.dx, dh2, s.x2, n2.rstd);
  // token mixer
  const gate = await normGateForward(gpu, { o: s.o, u: s.u }, { act: c.gateActivation, eps }); // y recomputed
  const dy = await linearBackward(gpu, {
    x: gate.y.reshape([rows, D]),
    w: P.out,
    dy: dx2.reshape([rows, D]),
    dw: dP.out,
  }); // [B·n, D]
  gate.y.release();
  const dGate = await normGateBackward(
    gpu,
    { o: s.o, u: s.u, rstd: gate.rstd, dy: dy.reshape(s.o.shape) },
    { act: c.gateActivation, eps },
  ); // dO, dU [B, n, D]
  releaseAll(dy, s.o, s.u, gate.rstd);
  const dOHeads = await tokensToHeads(gpu, dGate.dO, dims); // [B, H, n, hd]
  dGate.dO.release();
  const dqkv = await ctx.attention.backward(gpu, { dO: dOHeads, layer: ctx.layer });
  releaseAll(dOHeads, s.q, s.k, s.v);
  const dqRaw = await featureMapBackward(gpu, { x: s.qRaw, dy: dqkv.dq }, { map: c.featureMap });
  const dkRaw = await featureMapBackward(gpu, { x: s.kRaw, dy: dqkv.dk }, { map: c.featureMap });
  releaseAll(dqkv.dq, dqkv.dk, s.qRaw, s.kRaw);
  const dqkvu = await mergeQkvu(gpu, { q: dqRaw, k: dkRaw, v: dqkv.dv, u: dGate.dU }, dims);
  releaseAll(dqRaw, dkRaw, dqkv.dv, dGate.dU);
  const n1 = await srmsnormForward(gpu, x, { gain: P.tokenNorm, eps }); // h1 recomputed
  const dh1 = await linearBackward(gpu, {
    x: n1.y.reshape([rows, D]),
    w: P.qkvu,
    dy: dqkvu.reshape([rows, 4 * D]),
    dw: dP.qkvu,
  }); // [B·n, D]
  releaseAll(dqkvu, n1.y);
  const dn1 = await srmsnormBackward(
    gpu,
    { x, rstd: n1.rstd, dy: dh1.reshape(x.shape) },
    { gain: P.tokenNorm, dgain: dP.tokenNorm, accumulate: !!P.tokenNorm },
  );
  const dx = await add(gpu, dn1.dx, dx2); // [B, n, D]
  releaseAll(dn1.dx, dh1, dx2, n1.rstd);
  gpu.commands.submit();
  return dx;
}
