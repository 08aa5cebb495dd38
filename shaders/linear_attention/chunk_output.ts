/**
 * WGSL generators of the fused per-chunk output kernels (docs LASP.md §2), forward and
 * backward side by side. One workgroup per (chunk, batch·head, column tile) computes
 *
 *     out[C, n] = X′ · B1  +  W · (A3 · B2)        X = (XL · XRᵀ) ⊙ M,  X′ = X or Xᵀ
 *
 * with the C×C score tile X kept in workgroup memory (never in global memory):
 *
 * | kernel        | XL | XR | X′ | B1 | A3 | B2   | W |
 * |---------------|----|----|----|----|----|------|---|
 * | `la_fwd_output` O  | Q  | K  | X  | V  | Q  | S    | Λ |
 * | `la_bwd_dq`  dQ    | dO | V  | X  | K  | dO | Sᵀ   | Λ |
 * | `la_bwd_dk`  dK    | dO | V  | Xᵀ | Q  | V  | Gᵀ   | Γ |
 * | `la_bwd_dv`  dV    | Q  | K  | Xᵀ | dO | K  | G    | Γ |
 *
 * S = S_(c−1) (state before the chunk), G = G_c (gradient of the state after it), both formed
 * as `st + w · sp`: the chunk's part-local prefix `st[bh, chunk − chunkBase]` plus its part's
 * incoming value `sp[bh, part − firstPart]` decayed by w = λ^(tokens from the part's start to
 * the chunk) for S, λ^(tokens from the chunk to the part's end) for G ([dk, dv], f32).
 * M_ij = λ^(i−j) for j ≤ i (else 0), Λ = diag(λ^1 … λ^C), Γ = diag(λ^(len−1) … λ^0).
 *
 * Phases: (1) X, by (C/4)² threads of 4×4 each, the lower-triangle blocks computed and the
 * upper ones zeroed (no thread does masked-out work); (2) acc = A3·B2, then rows scaled by
 * W; (3) acc += X′·B1, where a thread skips score tiles that are zero for all its rows.
 * @module
 */
import {
  accDecl,
  enables,
  fmaStep,
  type IoType,
  range,
  type RegisterTile,
  stagedLoop,
  storageArray,
  tileLoad,
} from "./tiles.ts";

/** The four fused output kernels. */
export type OutputKind = "fwd_o" | "bwd_dq" | "bwd_dk" | "bwd_dv";

interface OutputForm {
  name: string;
  /** X′ = Xᵀ. */
  transposeScores: boolean;
  /** Row weights W of the state term: Λ (λ^(r+1)) or Γ (λ^(len−1−r)). */
  weights: "lambda" | "gamma";
  /** B2 is the transposed state ([n, e] in memory). */
  transposeState: boolean;
}

const FORMS: Record<OutputKind, OutputForm> = {
  fwd_o: {
    name: "la_fwd_output",
    transposeScores: false,
    weights: "lambda",
    transposeState: false,
  },
  bwd_dq: { name: "la_bwd_dq", transposeScores: false, weights: "lambda", transposeState: true },
  bwd_dk: { name: "la_bwd_dk", transposeScores: true, weights: "gamma", transposeState: true },
  bwd_dv: { name: "la_bwd_dv", transposeScores: true, weights: "gamma", transposeState: false },
};

/** Tile of an output kernel: the chunk, rows × column groups per thread, staged depth. */
export interface OutputTile {
  /** Tokens per chunk C (32 or 64): the workgroup has (C/4)² threads. */
  chunk: number;
  /** Output rows per thread (4 or 8), contiguous. */
  tm: number;
  /** Output columns per thread (multiple of 4), in groups of 4 strided across threads. */
  tn: number;
  /** Reduction depth of one staged step (divides C, multiple of 4). */
  bk: number;
}

/** Everything baked into one output shader (and so its cache key). */
export interface OutputConfig extends OutputTile {
  kind: OutputKind;
  io: IoType;
  /** dk and dv are multiples of 4: vec4 loads and stores. */
  vec: boolean;
}

/** Threads, thread grid of phases 2–3, and columns per workgroup of a tile. */
export function outputGeometry(t: OutputTile): {
  threads: number;
  tx: number;
  ty: number;
  bn: number;
} {
  const m = t.chunk / 4;
  const threads = m * m;
  const ty = t.chunk / t.tm;
  const tx = threads / ty;
  return { threads, tx, ty, bn: t.tn * tx };
}

/** Bytes of workgroup memory the tile needs. */
export function outputSharedBytes(t: OutputTile): number {
  const { bn } = outputGeometry(t);
  return 4 * (t.chunk * t.chunk + t.bk * t.chunk + t.bk * Math.max(t.chunk, bn));
}

/** Checks that an output tile can be generated; throws naming the rule broken. */
export function validateOutputTile(t: OutputTile): void {
  const { tx } = outputGeometry(t);
  const rules: [boolean, string][] = [
    [[32, 64].includes(t.chunk), "chunk must be 32 or 64"],
    [t.tm === 4 || t.tm === 8, "tm must be 4 or 8"],
    [Number.isInteger(tx), "(chunk/4)² threads must split into chunk/tm rows"],
    [t.tn % 4 === 0 && t.tn >= 4 && t.tn <= 16, "tn must be 4, 8, 12 or 16"],
    [t.bk % 4 === 0 && t.chunk % t.bk === 0, "bk must be a multiple of 4 dividing chunk"],
  ];
  for (const [ok, rule] of rules) {
    if (!ok) throw new Error(`Invalid linear-attention output tile ${JSON.stringify(t)}: ${rule}`);
  }
}

/** Kernel name and cache key. */
export function outputKey(c: OutputConfig): string {
  return `${FORMS[c.kind].name}:C${c.chunk}/${c.tm}x${c.tn}/bk${c.bk}:${c.io}${c.vec ? ":v4" : ""}`;
}

/** Phase 1: the score tile X = (XL · XRᵀ) ⊙ M into workgroup memory `xs`, laid out [s][r]. */
function scorePhase(c: OutputConfig, threads: number): string {
  const m = c.chunk / 4, lower = (m * (m + 1)) / 2;
  const common = { type: c.io, vec: c.vec, rows: c.chunk, bk: c.bk, along: "k" as const };
  const load = (name: string, src: string, dst: string) =>
    tileLoad({
      ...common,
      name,
      src,
      dst,
      base: "(bh * p.seqLen + tok0) * p.d1",
      ld: "p.d1",
      rLimit: "len",
      kLimit: "p.d1",
      threads,
    });
  const tile: RegisterTile = { acc: "x", tm: 4, tn: 4 };
  const loop = stagedLoop({
    loads: [load("rl", "xl", "sa"), load("rr", "xr", "sb")],
    steps: `(p.d1 + ${c.bk - 1}u) / ${c.bk}u`,
    bk: c.bk,
    body: (k) => fmaStep(tile, () => `sa[${k * m}u + bi]`, () => `sb[${k * m}u + bj]`),
    active: "lowerBlock",
  });
  // xs[s][r] must hold A[r, s] of phase 3: X[r, s] (queries r) or X[s, r] (keys r).
  const store = FORMS[c.kind].transposeScores
    ? range(4).map((i) => `xs[(4u * bi + ${i}u) * ${m}u + bj] = y${i};`)
    : range(4).map((j) =>
      `xs[(4u * bj + ${j}u) * ${m}u + bi] = vec4<f32>(y0[${j}], y1[${j}], y2[${j}], y3[${j}]);`
    );
  return `// Phase 1: thread → 4×4 block (bi, bj) of X; blocks with bj ≤ bi first, then the zero ones.
  let lowerBlock = tid < ${lower}u;
  let u = select(tid - ${lower}u, tid, lowerBlock);
  var ta = u32((sqrt(8.0 * f32(u) + 1.0) - 1.0) * 0.5); // u = ta(ta+1)/2 + tb, tb ≤ ta
  if ((ta + 1u) * (ta + 2u) / 2u <= u) { ta += 1u; }
  if (ta * (ta + 1u) / 2u > u) { ta -= 1u; }
  let tb = u - ta * (ta + 1u) / 2u;
  let bi = select(tb, ta, lowerBlock);
  let bj = select(ta + 1u, tb, lowerBlock);
  ${accDecl(tile)}
  ${loop}
  var y0 = vec4<f32>(0.0); var y1 = vec4<f32>(0.0); var y2 = vec4<f32>(0.0); var y3 = vec4<f32>(0.0);
  if (lowerBlock) {
    let dij = f32(bi) * 4.0 - f32(bj) * 4.0;
    let cols = vec4<f32>(0.0, 1.0, 2.0, 3.0);
    ${
    range(4).map((i) =>
      `y${i} = x${i}_0 * exp2((vec4<f32>(dij + ${i}.0) - cols) * l2);
    if (bi == bj) { y${i} = select(vec4<f32>(0.0), y${i}, cols <= vec4<f32>(${i}.0)); }`
    ).join("\n    ")
  }
  }
  ${store.join("\n  ")}`;
}

/** Generates one fused output shader. */
export function outputWgsl(c: OutputConfig): string {
  validateOutputTile(c);
  const form = FORMS[c.kind];
  const { threads, tx, bn } = outputGeometry(c);
  const m = c.chunk / 4, bn4 = bn / 4, tm4 = c.tm / 4;
  const tile: RegisterTile = { acc: "acc", tm: c.tm, tn: c.tn };
  const aRow = (buf: string, k: string) => (g: number) => `${buf}[${k} + ty * ${tm4}u + ${g}u]`;
  const bCol = (k: number) => (g: number) => `sb[${k * bn4 + g * tx}u + tx]`;
  const common = { type: c.io, vec: c.vec, bk: c.bk, threads };
  // Phase 2: acc = A3 · B2 (reduction over the state's other dimension e).
  const a3 = tileLoad({
    ...common,
    name: "ra",
    src: "a3",
    rows: c.chunk,
    along: "k",
    base: "(bh * p.seqLen + tok0) * p.e",
    ld: "p.e",
    rLimit: "len",
    kLimit: "p.e",
    dst: "sa",
  });
  const b2 = tileLoad({
    ...common,
    type: "f32",
    name: "rs",
    src: "st",
    rows: bn,
    along: form.transposeState ? "k" : "r",
    base: form.transposeState ? "stBase + n0 * p.e" : "stBase + n0",
    plus: {
      src: "sp",
      base: form.transposeState ? "spBase + n0 * p.e" : "spBase + n0",
      weight: "wPart",
    },
    ld: form.transposeState ? "p.e" : "p.n",
    rLimit: "p.n - n0",
    kLimit: "p.e",
    dst: "sb",
  });
  const statePhase = stagedLoop({
    loads: [a3, b2],
    steps: `(p.e + ${c.bk - 1}u) / ${c.bk}u`,
    bk: c.bk,
    body: (k) => fmaStep(tile, aRow("sa", `${k * m}u`), bCol(k)),
  });
  const weight = form.weights === "lambda"
    ? (r: string) => `exp2(f32(${r} + 1u) * l2)`
    : (r: string) => `select(0.0, exp2(f32(len - 1u - ${r}) * l2), ${r} < len)`;
  const scaleRows = range(c.tm).map((r) => {
    const w = `w${r}`;
    return `let ${w} = ${weight(`(row0 + ${r}u)`)}; ${
      range(c.tn / 4).map((g) => `acc${r}_${g} *= ${w};`).join(" ")
    }`;
  }).join("\n  ");
  // Phase 3: acc += X′ · B1 (reduction over the chunk's tokens s).
  const b1 = tileLoad({
    ...common,
    name: "rv",
    src: "b1",
    rows: bn,
    along: "r",
    base: "(bh * p.seqLen + tok0) * p.n + n0",
    ld: "p.n",
    rLimit: "p.n - n0",
    kLimit: "len",
    dst: "sb",
  });
  const scorePart = stagedLoop({
    loads: [b1],
    steps: `(len + ${c.bk - 1}u) / ${c.bk}u`,
    bk: c.bk,
    body: (k) => fmaStep(tile, aRow("xs", `(t * ${c.bk}u + ${k}u) * ${m}u`), bCol(k)),
    // X′[r, s] = 0 for s > r (X) or s < r (Xᵀ): skip steps outside every row of the thread.
    active: form.transposeScores
      ? `t * ${c.bk}u + ${c.bk - 1}u >= row0`
      : `t * ${c.bk}u <= row0 + ${c.tm - 1}u`,
  });
  const stores = range(c.tm).flatMap((r) =>
    range(c.tn / 4).map((g) => {
      const acc = `acc${r}_${g}`;
      const head = `let row = row0 + ${r}u; let col = n0 + ${g * 4 * tx}u + tx * 4u;`;
      if (c.vec) {
        return `{ ${head} if (row < len && col < p.n) { out[(oBase + row * p.n + col) / 4u] = vec4<${c.io}>(${acc}); } }`;
      }
      return `{ ${head} if (row < len) { ${
        range(4).map((j) =>
          `if (col + ${j}u < p.n) { out[oBase + row * p.n + col + ${j}u] = ${c.io}(${acc}[${j}]); }`
        ).join(" ")
      } } }`;
    })
  ).join("\n  ");
  const io = storageArray(c.io, c.vec);
  return /* wgsl */ `${enables(c.io)}// generated by shaders/linear_attention/chunk_output.ts: ${
    outputKey(c)
  }
struct Params {
  seqLen: u32, heads: u32, chunkBase: u32, segChunks: u32,
  partChunks: u32, segParts: u32, d1: u32, e: u32, n: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> decay: array<f32>; // [H] log2 λ
@group(0) @binding(2) var<storage, read> xl: ${io}; // [BH, N, d1]
@group(0) @binding(3) var<storage, read> xr: ${io}; // [BH, N, d1]
@group(0) @binding(4) var<storage, read> a3: ${io}; // [BH, N, e]
@group(0) @binding(5) var<storage, read> b1: ${io}; // [BH, N, n]
@group(0) @binding(6) var<storage, read> st: ${
    storageArray("f32", c.vec)
  }; // [BH, segChunks, e, n] (or [.., n, e])
@group(0) @binding(7) var<storage, read> sp: ${
    storageArray("f32", c.vec)
  }; // [BH, segParts, e, n] (or [.., n, e])
@group(0) @binding(8) var<storage, read_write> out: ${io}; // [BH, N, n]

var<workgroup> xs: array<vec4<f32>, ${(c.chunk * c.chunk) / 4}>; // X′ as [s][r]
var<workgroup> sa: array<vec4<f32>, ${(c.bk * c.chunk) / 4}>; // [bk][C]
var<workgroup> sb: array<vec4<f32>, ${(c.bk * Math.max(c.chunk, bn)) / 4}>; // [bk][max(C, bn)]

@compute @workgroup_size(${threads}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let cl = wg.x;
  let bh = wg.y;
  let n0 = wg.z * ${bn}u;
  let tok0 = (p.chunkBase + cl) * ${c.chunk}u;
  let len = min(${c.chunk}u, p.seqLen - tok0);
  let l2 = decay[bh % p.heads];
  let tx = tid % ${tx}u;
  let ty = tid / ${tx}u;
  let row0 = ty * ${c.tm}u;
  let stBase = (bh * p.segChunks + cl) * p.e * p.n;
  // The state term is st (part-local prefix) + wPart · sp (the part's incoming value).
  let chunk = p.chunkBase + cl;
  let part0 = (chunk / p.partChunks) * p.partChunks; // first chunk of the part
  let spBase = (bh * p.segParts + chunk / p.partChunks - p.chunkBase / p.partChunks) * p.e * p.n;
  ${
    form.weights === "lambda"
      // S: decayed over the tokens from the part's start to the chunk's start
      ? `let wPart = exp2(f32((chunk - part0) * ${c.chunk}u) * l2);`
      // G: decayed over the tokens from the chunk's end to the part's end
      : `let wPart = exp2(f32(min(p.seqLen, (part0 + p.partChunks) * ${c.chunk}u) - min(p.seqLen, (chunk + 1u) * ${c.chunk}u)) * l2);`
  }
  let oBase = (bh * p.seqLen + tok0) * p.n;
  ${scorePhase(c, threads)}
  // Phase 2: state term.
  ${accDecl(tile)}
  ${statePhase}
  ${scaleRows}
  // Phase 3: score term.
  ${scorePart}
  ${stores}
}
`;
}
