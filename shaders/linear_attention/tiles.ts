/**
 * Building blocks of the linear-attention kernel generators: cooperative tile loads from
 * global into workgroup memory (through registers, so the next tile's loads overlap the
 * current tile's math), unrolled register-tile FMA steps, and the staged loop that strings
 * them together. Everything is emitted as straight-line WGSL: loops over per-thread register
 * arrays are not unrolled by the drivers here and cost ≈30× (docs/PLATFORM.md).
 *
 * Workgroup tiles are stored "k-major": `dst[k · rows/4 + r/4]` is a vec4 of rows r..r+3 at
 * reduction index k, so a thread reads its fragment of 4 rows with one vec4.
 * @module
 */

/** Element type of q, k, v, o, dO and their gradients in storage (states are always f32). */
export type IoType = "f32" | "f16";

/** `[0, 1, …, n−1]`. */
export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** `enable f16;` when the kernel touches f16 storage. */
export function enables(io: IoType): string {
  return io === "f16" ? "enable f16;\n" : "";
}

/** Storage array type: vec4 elements when every row length is a multiple of 4. */
export function storageArray(type: IoType, vec: boolean): string {
  return vec ? `array<vec4<${type}>>` : `array<${type}>`;
}

/** One tile of a global matrix staged into workgroup memory. */
export interface TileLoad {
  /** Register prefix, unique within the kernel. */
  name: string;
  /** Global binding. */
  src: string;
  /** Element type of `src`. */
  type: IoType;
  /** `src` holds vec4s (every row length a multiple of 4). */
  vec: boolean;
  /** Tile rows (the non-reduction dimension), a multiple of 4. */
  rows: number;
  /** Tile depth along the reduction dimension, a multiple of 4. */
  bk: number;
  /** Which tile dimension is contiguous in global memory. */
  along: "r" | "k";
  /** Element offset of the tile origin (r = 0, reduction index 0). */
  base: string;
  /** Element stride between consecutive lines (k lines for `along: "r"`, r lines otherwise). */
  ld: string;
  /** Rows r < rLimit exist; the rest load as 0. */
  rLimit: string;
  /** Reduction indices k0 + k < kLimit exist; the rest load as 0. */
  kLimit: string;
  /** `along: "r"` only: a weight per reduction index (WGSL f32 of the index expression). */
  scale?: (k: string) => string;
  /** Workgroup array<vec4<f32>> of bk·rows/4 vec4s. */
  dst: string;
  /** Threads of the workgroup (`tid` is the local invocation index). */
  threads: number;
}

/** Generated code of one {@linkcode TileLoad}: declarations, per-thread indices, fetch, store. */
export interface TileLoadCode {
  decl: string;
  setup: string;
  fetch: string;
  store: string;
}

/** WGSL that reads element `index` of `t.src` as f32 (or vec4<f32>). */
function read(t: TileLoad, index: string): string {
  const value = `${t.src}[${index}]`;
  if (t.vec) return t.type === "f32" ? value : `vec4<f32>(${value})`;
  return t.type === "f32" ? value : `f32(${value})`;
}

/** Generates the staged load of one tile (see {@linkcode TileLoad}). */
export function tileLoad(t: TileLoad): TileLoadCode {
  const count = (t.rows * t.bk) / 4; // vec4s in the tile
  const perThread = Math.ceil(count / t.threads);
  const r4 = t.rows / 4, k4 = t.bk / 4;
  const decl: string[] = [], setup: string[] = [], fetch: string[] = [], store: string[] = [];
  for (const l of range(perThread)) {
    const v = `${t.name}${l}`, e = `(tid + ${l * t.threads}u)`;
    const partial = (l + 1) * t.threads > count;
    const inTile = partial ? `${e} < ${count}u && ` : "";
    decl.push(`var ${v}: vec4<f32>;`);
    if (t.along === "r") {
      setup.push(`let ${v}k = ${e} / ${r4}u; let ${v}r = (${e} % ${r4}u) * 4u;`);
      const offset = `${t.base} + (k0 + ${v}k) * ${t.ld} + ${v}r`;
      const scale = t.scale ? ` * ${t.scale(`k0 + ${v}k`)}` : "";
      if (t.vec) {
        fetch.push(
          `${v} = vec4<f32>(0.0); if (${inTile}k0 + ${v}k < ${t.kLimit} && ${v}r < ${t.rLimit}) { ${v} = ${
            read(t, `(${offset}) / 4u`)
          }${scale}; }`,
        );
      } else {
        const lanes = range(4).map((j) =>
          `if (${v}r + ${j}u < ${t.rLimit}) { ${v}[${j}] = ${read(t, `o + ${j}u`)}; }`
        ).join(" ");
        fetch.push(
          `${v} = vec4<f32>(0.0); if (${inTile}k0 + ${v}k < ${t.kLimit}) { let o = ${offset}; ${lanes} ${
            t.scale ? `${v} = ${v}${scale};` : ""
          } }`,
        );
      }
      store.push(
        `${
          partial ? `if (${e} < ${count}u) ` : ""
        }{ ${t.dst}[${v}k * ${r4}u + ${v}r / 4u] = ${v}; }`,
      );
    } else {
      if (t.scale) throw new Error(`tile ${t.name}: a scale needs along: "r"`);
      setup.push(`let ${v}r = ${e} / ${k4}u; let ${v}k = (${e} % ${k4}u) * 4u;`);
      const offset = `${t.base} + ${v}r * ${t.ld} + k0 + ${v}k`;
      if (t.vec) {
        fetch.push(
          `${v} = vec4<f32>(0.0); if (${inTile}${v}r < ${t.rLimit} && k0 + ${v}k < ${t.kLimit}) { ${v} = ${
            read(t, `(${offset}) / 4u`)
          }; }`,
        );
      } else {
        const lanes = range(4).map((j) =>
          `if (k0 + ${v}k + ${j}u < ${t.kLimit}) { ${v}[${j}] = ${read(t, `o + ${j}u`)}; }`
        ).join(" ");
        fetch.push(
          `${v} = vec4<f32>(0.0); if (${inTile}${v}r < ${t.rLimit}) { let o = ${offset}; ${lanes} }`,
        );
      }
      const lanes = range(4).map((j) =>
        `${t.dst}[(${v}k + ${j}u) * ${r4}u + ${v}r / 4u][${v}r % 4u] = ${v}[${j}];`
      ).join(" ");
      store.push(`${partial ? `if (${e} < ${count}u) ` : ""}{ ${lanes} }`);
    }
  }
  const join = (lines: string[]) => lines.join("\n    ");
  return { decl: join(decl), setup: join(setup), fetch: join(fetch), store: join(store) };
}

/** A per-thread register tile of tm×tn accumulators, named `${acc}${r}_${g}` (vec4 per 4 columns). */
export interface RegisterTile {
  acc: string;
  tm: number;
  tn: number;
}

/** Declarations of the accumulators, zeroed. */
export function accDecl(t: RegisterTile): string {
  return range(t.tm).flatMap((r) =>
    range(t.tn / 4).map((g) => `var ${t.acc}${r}_${g} = vec4<f32>(0.0);`)
  ).join("\n  ");
}

/**
 * One reduction step: `aRow(g)` is the vec4 of rows 4g..4g+3 of the thread, `bCol(g)` the
 * vec4 of its column group g; every accumulator gets one FMA.
 */
export function fmaStep(
  t: RegisterTile,
  aRow: (g: number) => string,
  bCol: (g: number) => string,
): string {
  const lines: string[] = [];
  for (const g of range(t.tm / 4)) lines.push(`let a${g} = ${aRow(g)};`);
  for (const g of range(t.tn / 4)) lines.push(`let b${g} = ${bCol(g)};`);
  for (const r of range(t.tm)) {
    for (const g of range(t.tn / 4)) {
      const acc = `${t.acc}${r}_${g}`;
      lines.push(`${acc} = fma(vec4<f32>(a${r >> 2}[${r & 3}]), b${g}, ${acc});`);
    }
  }
  return `{ ${lines.join(" ")} }`;
}

/** Options of {@linkcode stagedLoop}. */
export interface StagedLoop {
  /** Tiles staged per step. */
  loads: TileLoadCode[];
  /** WGSL u32 expression: number of steps (must be workgroup-uniform). */
  steps: string;
  /** Reduction depth of one step. */
  bk: number;
  /** Math for reduction index k (0 ≤ k < bk) of step `t` (WGSL variable `t`). */
  body: (k: number) => string;
  /** WGSL bool: this thread does the math of step `t` (skips causally empty tiles). */
  active?: string;
}

/**
 * The loop over reduction steps: step t+1's global loads are issued into registers before
 * step t's math, then stored to workgroup memory between two barriers (as in shaders/matmul.ts).
 */
export function stagedLoop(o: StagedLoop): string {
  const all = (part: keyof TileLoadCode) => o.loads.map((l) => l[part]).join("\n    ");
  const math = range(o.bk).map(o.body).join("\n      ");
  return `{
    ${all("decl")}
    ${all("setup")}
    let steps = ${o.steps};
    var k0 = 0u;
    ${all("fetch")}
    ${all("store")}
    workgroupBarrier();
    for (var t = 0u; t < steps; t++) {
      k0 = (t + 1u) * ${o.bk}u;
      let more = t + 1u < steps;
      if (more) {
    ${all("fetch")}
      }
      if (${o.active ?? "true"}) {
      ${math}
      }
      workgroupBarrier();
      if (more) {
    ${all("store")}
      }
      workgroupBarrier();
    }
  }`;
}
