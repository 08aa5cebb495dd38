/**
 * WGSL generators of the chunk-state kernels (docs LASP.md §2). The sequence is cut into
 * parts of `partChunks` chunks; one workgroup per (part, batch·head, state tile) walks its
 * part's chunks in order, holding the running state tile in registers:
 *
 * - `la_fwd_chunk_states` (chunks in order):  P_c = S_(c−1), then S ← λ^len S + (Γ K_c)ᵀ V_c
 * - `la_bwd_chunk_dstates` (chunks reversed): P_c = G_c,     then G ← λ^len G + (Λ Q_c)ᵀ dO_c
 *
 * Γ = diag(λ^(len−1) … λ^0), Λ = diag(λ^1 … λ^len), len = the chunk's real length (the last
 * chunk may be partial). The running value starts at zero in each part, so P_c is the part-local
 * prefix (written when `writePrefix`, for the output kernels) and the final value is the part's
 * total contribution (always written). The scan over part totals (state_scan.ts) gives each
 * part's incoming state; the output kernels add it, decayed, to P_c. Each chunk's tokens are
 * reduced bk at a time with the next step's loads in flight, also across chunk boundaries.
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

/** Tile of a state kernel: bm×bn of the [dk, dv] state per workgroup, tm×tn per thread. */
export interface StateTile {
  /** State rows (dk) per workgroup. */
  bm: number;
  /** State columns (dv) per workgroup. */
  bn: number;
  /** Rows per thread (multiple of 4). */
  tm: number;
  /** Columns per thread (multiple of 4). */
  tn: number;
  /** Tokens per staged step. */
  bk: number;
}

/** Forward (Γ-weighted K, V, chunks in order) or backward (Λ-weighted Q, dO, reversed). */
export type ChunkStateKind = "fwd" | "bwd";

/** Everything baked into one chunk-state shader (and so its cache key). */
export interface ChunkStateConfig extends StateTile {
  kind: ChunkStateKind;
  io: IoType;
  /** dk and dv are multiples of 4: vec4 loads and stores. */
  vec: boolean;
}

/** Kernel name and cache key. */
export function chunkStateKey(c: ChunkStateConfig): string {
  const name = c.kind === "fwd" ? "la_fwd_chunk_states" : "la_bwd_chunk_dstates";
  return `${name}:${c.bm}x${c.bn}/${c.tm}x${c.tn}/bk${c.bk}:${c.io}${c.vec ? ":v4" : ""}`;
}

/** Threads in x (state columns) and y (state rows). */
export function stateThreads(t: StateTile): [number, number] {
  return [t.bn / t.tn, t.bm / t.tm];
}

/** Checks that a state tile can be generated; throws naming the rule broken. */
export function validateStateTile(t: StateTile): void {
  const [tx, ty] = stateThreads(t);
  const rules: [boolean, string][] = [
    [t.tm % 4 === 0 && t.tn % 4 === 0, "tm and tn must be multiples of 4"],
    [Number.isInteger(tx) && Number.isInteger(ty), "bm/tm and bn/tn must be integers"],
    [[8, 16, 32].includes(t.bk), "bk must be 8, 16 or 32 (it divides the chunk)"],
    [tx * ty <= 256, "at most 256 threads"],
  ];
  for (const [ok, rule] of rules) {
    if (!ok) throw new Error(`Invalid linear-attention state tile ${JSON.stringify(t)}: ${rule}`);
  }
}

/** Generates one chunk-state shader. */
export function chunkStateWgsl(c: ChunkStateConfig): string {
  validateStateTile(c);
  const [tx, ty] = stateThreads(c);
  const threads = tx * ty;
  const fwd = c.kind === "fwd";
  // Line x of the part's token stream: chunks in order (fwd) or last chunk first (bwd).
  const line = fwd
    ? (x: string) => x
    : (x: string) => `(nc - 1u - (${x}) / p.chunk) * p.chunk + (${x}) % p.chunk`;
  // Token weight, from its offset in the part: Γ (fwd) or Λ (bwd) of its chunk.
  const weight = fwd
    ? (x: string) => `exp2(f32(chunkLen((${x}) / p.chunk, partLen) - 1u - (${x}) % p.chunk) * l2)`
    : (x: string) => `exp2(f32((${x}) % p.chunk + 1u) * l2)`;
  const common = { type: c.io, vec: c.vec, bk: c.bk, along: "r" as const, threads, line };
  const a = tileLoad({
    ...common,
    name: "ra",
    src: "a",
    rows: c.bm,
    base: "(bh * p.seqLen + tok0) * p.m + m0",
    ld: "p.m",
    rLimit: "p.m - m0",
    kLimit: "partLen",
    scale: weight,
    dst: "sa",
  });
  const b = tileLoad({
    ...common,
    name: "rb",
    src: "b",
    rows: c.bn,
    base: "(bh * p.seqLen + tok0) * p.n + n0",
    ld: "p.n",
    rLimit: "p.n - n0",
    kLimit: "partLen",
    dst: "sb",
  });
  const tile: RegisterTile = { acc: "acc", tm: c.tm, tn: c.tn };
  /** Stores the accumulators to `buf` at element offset `base` ([m, n] row-major). */
  const storeTo = (buf: string, base: string) =>
    range(c.tm).flatMap((r) =>
      range(c.tn / 4).map((g) => {
        const row = `m0 + ${(r >> 2) * ty * 4 + (r & 3)}u + ty * 4u`;
        const col = `n0 + ${g * tx * 4}u + tx * 4u`;
        const acc = `acc${r}_${g}`;
        const head = `let row = ${row}; let col = ${col};`;
        if (c.vec) {
          return `{ ${head} if (row < p.m && col < p.n) { ${buf}[(${base} + row * p.n + col) / 4u] = ${acc}; } }`;
        }
        return `{ ${head} if (row < p.m) { ${
          range(4).map((j) =>
            `if (col + ${j}u < p.n) { ${buf}[${base} + row * p.n + col + ${j}u] = ${acc}[${j}]; }`
          ).join(" ")
        } } }`;
      })
    ).join("\n      ");
  const scaleAll = range(c.tm).flatMap((r) => range(c.tn / 4).map((g) => `acc${r}_${g} *= f;`))
    .join(" ");
  // At a chunk's first step: record the running value, then decay it over the chunk.
  const chunkStart = `if (t % spc == 0u) {
      let cl = ${fwd ? "t / spc" : "nc - 1u - t / spc"};
      if (p.writePrefix != 0u) {
      let pBase = (bh * p.segChunks + c0 + cl - p.firstPart * p.partChunks) * p.m * p.n;
      ${storeTo("prefix", "pBase")}
      }
      let f = exp2(f32(chunkLen(cl, partLen)) * l2); ${scaleAll}
    }`;
  const loop = stagedLoop({
    loads: [a, b],
    steps: "nc * spc",
    bk: c.bk,
    pre: chunkStart,
    body: (k) =>
      fmaStep(
        tile,
        (g) => `sa[${(k * c.bm) / 4 + g * ty}u + ty]`,
        (g) => `sb[${(k * c.bn) / 4 + g * tx}u + tx]`,
      ),
  });
  const state = storageArray("f32", c.vec);
  return /* wgsl */ `${enables(c.io)}// generated by shaders/linear_attention/chunk_state.ts: ${
    chunkStateKey(c)
  }
struct Params {
  seqLen: u32, heads: u32, chunk: u32, partChunks: u32, firstPart: u32,
  segChunks: u32, segParts: u32, m: u32, n: u32, tilesN: u32, writePrefix: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> decay: array<f32>; // [H] log2 λ
@group(0) @binding(2) var<storage, read> a: ${storageArray(c.io, c.vec)}; // [BH, N, m]: K or Q
@group(0) @binding(3) var<storage, read> b: ${storageArray(c.io, c.vec)}; // [BH, N, n]: V or dO
@group(0) @binding(4) var<storage, read_write> prefix: ${state}; // [BH, segChunks, m, n]
@group(0) @binding(5) var<storage, read_write> total: ${state}; // [BH, segParts, m, n]

var<workgroup> sa: array<vec4<f32>, ${(c.bk * c.bm) / 4}>; // [bk][bm]
var<workgroup> sb: array<vec4<f32>, ${(c.bk * c.bn) / 4}>; // [bk][bn]

/** Tokens of chunk cl of a part of partLen tokens (only the sequence's last chunk is short). */
fn chunkLen(cl: u32, partLen: u32) -> u32 { return min(p.chunk, partLen - cl * p.chunk); }

@compute @workgroup_size(${threads}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let part = p.firstPart + wg.x;
  let bh = wg.y;
  let m0 = (wg.z / p.tilesN) * ${c.bm}u;
  let n0 = (wg.z % p.tilesN) * ${c.bn}u;
  let c0 = part * p.partChunks; // first chunk of the part
  let tok0 = c0 * p.chunk;
  let partLen = min(p.partChunks * p.chunk, p.seqLen - tok0);
  let nc = (partLen + p.chunk - 1u) / p.chunk;
  let spc = p.chunk / ${c.bk}u; // steps per chunk
  let l2 = decay[bh % p.heads];
  let tx = tid % ${tx}u;
  let ty = tid / ${tx}u;
  ${accDecl(tile)}
  ${loop}
  let tBase = (bh * p.segParts + wg.x) * p.m * p.n;
  ${storeTo("total", "tBase")}
}
`;
}
