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
 *
 * Row chunks: the widest activations, the fused projection [B·n, 4D] and the GLU branches
 * [B·n, G], outgrow one storage binding (2 GiB) long before memory runs out (1b: 64K tokens).
 * The token-local work around them (projection, split/merge, GLU and their backward) runs
 * over chunks of token rows, reading and writing the [B·n, D] tensors through row views;
 * everything else sees whole tensors. One chunk (the usual case) is the plain computation.
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { copyTensor, emptyTensor, type Tensor } from "../gpu/tensor.ts";
import type { AttentionLayer } from "../lasp/attention.ts";
import { matmul } from "../ops/matmul.ts";
import { add, mul } from "../ops/elementwise.ts";
import { srmsnormBackward, srmsnormForward } from "../ops/srmsnorm/srmsnorm.ts";
import { normGateBackward, normGateForward } from "../ops/srmsnorm/norm_gate.ts";
import {
  featureMapBackward,
  featureMapForward,
  gluBackward,
} from "../ops/activation/activation.ts";
import {
  headsToTokens,
  mergeQkvu,
  type QkvuParts,
  splitQkvu,
  tokensToHeads,
} from "../ops/heads/heads.ts";
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
  attention: AttentionLayer;
  /** Layer index l (tags LASP messages). */
  layer: number;
  /** λ per head of this layer. */
  decay: readonly number[];
  /** The block's parameters. */
  params: BlockParams;
  /** Gradients, added to by the backward. */
  grads: BlockParams;
  /** Most bytes of one row chunk of the widest activation (see the module doc). */
  rowChunkBytes: number;
}

/** Default bound of a row chunk: big enough for full-speed matmuls, small enough to bind. */
export const ROW_CHUNK_BYTES = 1 << 30;

/**
 * `[start, count]` chunks of `rows` token rows such that `count · width` floats stay within
 * `maxBytes`; chunks start at multiples of 64 rows so every f32 row view is 256-byte aligned.
 */
export function rowChunks(rows: number, width: number, maxBytes: number): [number, number][] {
  const fit = Math.max(64, Math.floor(maxBytes / (4 * width) / 64) * 64);
  const chunks: [number, number][] = [];
  for (let start = 0; start < rows; start += fit) chunks.push([start, Math.min(fit, rows - start)]);
  return chunks;
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
  /** [rows, G] first GLU branch, per row chunk */
  a: Tensor[];
  /** [rows, G] second GLU branch, per row chunk */
  b: Tensor[];
}

/** Every tensor a {@linkcode BlockSaved} holds (to release them). */
export function savedTensors(saved: BlockSaved): Tensor[] {
  const { qRaw, kRaw, q, k, v, u, o, x2, a, b } = saved;
  return [qRaw, kRaw, q, k, v, u, o, x2, ...a, ...b];
}

/** `x · Wᵀ` for x [rows, in] and W [out, in] (PyTorch's Linear). */
export function linear(gpu: Gpu, x: Tensor, w: Tensor): Promise<Tensor> {
  return matmul(gpu, x, w, { transB: true }); // [rows, out]
}

/**
 * Backward of {@linkcode linear}: dW += dyᵀ·x; returns dx = dy·W, written into `dx` if given
 * (added to it with `accumulate`).
 */
export async function linearBackward(
  gpu: Gpu,
  saved: { x: Tensor; w: Tensor; dy: Tensor; dw: Tensor },
  options: { dx?: Tensor; accumulate?: boolean } = {},
): Promise<Tensor> {
  const { x, w, dy, dw } = saved;
  await matmul(gpu, dy, x, { transA: true, out: dw, accumulate: true }); // [out, in]
  return await matmul(gpu, dy, w, { out: options.dx, accumulate: options.accumulate }); // [rows, in]
}

function releaseAll(...tensors: Tensor[]): void {
  for (const t of tensors) t.release();
}

/** Block forward; returns x3 [B, n, D] and, with `needsGrad`, what the backward needs. */
export async function blockForward(
  ctx: BlockContext,
  x: Tensor, // [B, n, D]
  options: { needsGrad: boolean; recompute?: "first" | "again" },
): Promise<{ out: Tensor; saved?: BlockSaved }> {
  const { gpu, config: c, params: P } = ctx;
  const [batch, length, D] = x.shape;
  const rows = batch * length;
  const dims = { batch, length, heads: c.heads, headDim: c.headDim };
  const eps = c.normEps;
  const chunks = rowChunks(rows, Math.max(4 * D, c.gluDim), ctx.rowChunkBytes);
  // token mixer
  const n1 = await srmsnormForward(gpu, x, { gain: P.tokenNorm, eps }); // h1 [B, n, D]
  const h1 = n1.y.reshape([rows, D]);
  const parts: QkvuParts = {
    q: emptyTensor(gpu, [batch, c.heads, length, c.headDim]),
    k: emptyTensor(gpu, [batch, c.heads, length, c.headDim]),
    v: emptyTensor(gpu, [batch, c.heads, length, c.headDim]),
    u: emptyTensor(gpu, [batch, length, D]),
  };
  for (const [start, count] of chunks) {
    const qkvu = await linear(gpu, h1.rows(start, count), P.qkvu); // [count, 4D]
    await splitQkvu(gpu, qkvu, { ...dims, rowOffset: start, into: parts });
    qkvu.release();
  }
  releaseAll(n1.y, n1.rstd);
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
    recompute: options.recompute, // the rerun reuses the first forward's LASP state
  }); // [B, H, n, hd]
  const o = await headsToTokens(gpu, oHeads, dims); // [B, n, D]
  oHeads.release();
  const gate = await normGateForward(gpu, { o, u: parts.u }, { act: c.gateActivation, eps }); // y
  const attn = await linear(gpu, gate.y.reshape([rows, D]), P.out); // [B·n, D]
  releaseAll(gate.y, gate.rstd);
  const x2 = await add(gpu, x, attn); // [B, n, D]
  attn.release();
  // channel mixer: out = x2 + (h2·W1ᵀ ⊙ h2·W2ᵀ)·W3ᵀ, chunk by chunk
  const n2 = await srmsnormForward(gpu, x2, { gain: P.channelNorm, eps }); // h2 [B, n, D]
  const h2 = n2.y.reshape([rows, D]);
  const out = emptyTensor(gpu, [batch, length, D]);
  copyTensor(gpu, x2, out);
  const outRows = out.reshape([rows, D]);
  const a: Tensor[] = [], b: Tensor[] = [];
  for (const [start, count] of chunks) {
    const h = h2.rows(start, count);
    a.push(await linear(gpu, h, P.l1)); // [count, G]
    b.push(await linear(gpu, h, P.l2)); // [count, G]
    const g = await mul(gpu, a.at(-1)!, b.at(-1)!); // [count, G]
    await matmul(gpu, g, P.l3, { transB: true, out: outRows.rows(start, count), accumulate: true });
    g.release();
  }
  releaseAll(n2.y, n2.rstd);
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
  releaseAll(...savedTensors(saved));
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
  const chunks = rowChunks(rows, Math.max(4 * D, c.gluDim), ctx.rowChunkBytes);
  // channel mixer, chunk by chunk (the chunks the forward saved a and b in)
  const n2 = await srmsnormForward(gpu, s.x2, { gain: P.channelNorm, eps }); // h2 recomputed
  const h2 = n2.y.reshape([rows, D]);
  const dh2 = emptyTensor(gpu, [rows, D]);
  for (const [i, [start, count]] of chunks.entries()) {
    const [a, b, h, dh] = [s.a[i], s.b[i], h2.rows(start, count), dh2.rows(start, count)];
    const g = await mul(gpu, a, b); // [count, G] recomputed
    const dg = await linearBackward(gpu, { x: g, w: P.l3, dy: d3.rows(start, count), dw: dP.l3 }); // [count, G]
    g.release();
    const { da, db } = await gluBackward(gpu, { a, b, dy: dg }); // [count, G] each
    releaseAll(dg, a, b);
    await linearBackward(gpu, { x: h, w: P.l1, dy: da, dw: dP.l1 }, { dx: dh });
    await linearBackward(gpu, { x: h, w: P.l2, dy: db, dw: dP.l2 }, { dx: dh, accumulate: true });
    releaseAll(da, db);
  }
  n2.y.release();
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
  const dParts = { q: dqRaw, k: dkRaw, v: dqkv.dv, u: dGate.dU };
  const n1 = await srmsnormForward(gpu, x, { gain: P.tokenNorm, eps }); // h1 recomputed
  const h1 = n1.y.reshape([rows, D]);
  const dh1 = emptyTensor(gpu, [rows, D]);
  for (const [start, count] of chunks) {
    const dqkvu = await mergeQkvu(gpu, dParts, { ...dims, rowOffset: start, rows: count });
    await linearBackward(gpu, {
      x: h1.rows(start, count),
      w: P.qkvu,
      dy: dqkvu.reshape([count, 4 * D]),
      dw: dP.qkvu,
    }, { dx: dh1.rows(start, count) });
    dqkvu.release();
  }
  releaseAll(dqRaw, dkRaw, dqkv.dv, dGate.dU, n1.y);
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
