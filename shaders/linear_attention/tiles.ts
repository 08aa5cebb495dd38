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
  /** `along: "r"` only: a weight per line (WGSL f32 of the line index expression). */
  scale?: (line: string) => string;
  /** `along: "r"` only: line index of reduction offset k0 + k (default: itself). */
  line?: (k: string) => string;
  /** Adds `weight · plus.src[same element relative to plus.base]` (f32 source, same layout). */
  plus?: { src: string; base: string; weight: string };
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

/** WGSL that reads element `index` of `src` (of type `type`) as f32 (or vec4<f32>). */
function read(src: string, type: IoType, vec: boolean, index: string): string {
  const value = `${src}[${index}]`;
  if (vec) return type === "f32" ? value : `vec4<f32>(${value})`;
  return type === "f32" ? value : `f32(${value})`;
}

/** Generates the staged load of one tile (see {@linkcode TileLoad}). */
export function tileLoad(t: TileLoad): TileLoadCode {
  const count = (t.rows * t.bk) / 4; // vec4s in the tile
  const perThread = Math.ceil(count / t.threads);
  const r4 = t.rows / 4, k4 = t.bk / 4;
  if (t.along === "k" && (t.scale || t.line)) {
    throw new Error(`tile ${t.name}: scale and line need along: "r"`);
  }
  /** Loads the vec4 at `base + rest` (+ the weighted `plus` source), lanes checked by `lane`. */
  const load = (v: string, rest: string, lane?: (j: number) => string) => {
    const plus = t.plus;
    if (t.vec) {
      const main = read(t.src, t.type, true, `(${t.base} + ${rest}) / 4u`);
      if (!plus) return `${v} = ${main};`;
      const extra = read(plus.src, "f32", true, `(${plus.base} + ${rest}) / 4u`);
      return `${v} = fma(vec4<f32>(${plus.weight}), ${extra}, ${main});`;
    }
    const lanes = range(4).map((j) => {
      let value = read(t.src, t.type, false, `${t.base} + o + ${j}u`);
      if (plus) {
        value = `fma(${plus.weight}, ${
          read(plus.src, "f32", false, `${plus.base} + o + ${j}u`)
        }, ${value})`;
      }
      return `if (${lane!(j)}) { ${v}[${j}] = ${value}; }`;
    });
    return `let o = ${rest}; ${lanes.join(" ")}`;
  };
  const decl: string[] = [], setup: string[] = [], fetch: string[] = [], store: string[] = [];
  for (const l of range(perThread)) {
    const v = `${t.name}${l}`, e = `(tid + ${l * t.threads}u)`;
    const partial = (l + 1) * t.threads > count;
    const inTile = partial ? `${e} < ${count}u && ` : "";
    const guard = partial ? `if (${e} < ${count}u) ` : "";
    decl.push(`var ${v}: vec4<f32>;`);
    if (t.along === "r") {
      setup.push(`let ${v}k = ${e} / ${r4}u; let ${v}r = (${e} % ${r4}u) * 4u;`);
      const line = t.line ? t.line(`k0 + ${v}k`) : `k0 + ${v}k`;
      const body = load(v, `${v}l * ${t.ld} + ${v}r`, (j) => `${v}r + ${j}u < ${t.rLimit}`);
      const rowsOk = t.vec ? ` && ${v}r < ${t.rLimit}` : "";
      const scale = t.scale ? ` ${v} = ${v} * ${t.scale(`${v}l`)};` : "";
      fetch.push(
        `${v} = vec4<f32>(0.0); { let ${v}l = ${line}; if (${inTile}${v}l < ${t.kLimit}${rowsOk}) { ${body}${scale} } }`,
      );
      store.push(`${guard}{ ${t.dst}[${v}k * ${r4}u + ${v}r / 4u] = ${v}; }`);
    } else {
      setup.push(`let ${v}r = ${e} / ${k4}u; let ${v}k = (${e} % ${k4}u) * 4u;`);
      const body = load(
        v,
        `${v}r * ${t.ld} + k0 + ${v}k`,
        (j) => `k0 + ${v}k + ${j}u < ${t.kLimit}`,
      );
      const kOk = t.vec ? ` && k0 + ${v}k < ${t.kLimit}` : "";
      fetch.push(`${v} = vec4<f32>(0.0); if (${inTile}${v}r < ${t.rLimit}${kOk}) { ${body} }`);
      const lanes = range(4).map((j) =>
        `${t.dst}[(${v}k + ${j}u) * ${r4}u + ${v}r / 4u][${v}r % 4u] = ${v}[${j}];`
      ).join(" ");
      store.push(`${guard}{ ${lanes} }`);
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
  /** Code run at the start of step `t`, before its math (register-only: no barriers). */
  pre?: string;
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
      ${o.pre ?? ""}
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
