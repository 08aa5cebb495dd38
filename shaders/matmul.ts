/**
 * WGSL generator for tiled matrix products C = alpha·op(A)·op(B) (+ C), batched over
 * workgroup z. Register tiles are written out unrolled: WGSL `for` loops over per-thread
 * arrays are not unrolled by the drivers here and cost ≈30× (docs/PLATFORM.md).
 *
 * Each workgroup computes a bm×bn tile of C; each thread a tm×tn sub-tile, laid out in groups
 * of 4 columns (rows) strided by 4·threads so that shared-memory reads are conflict-free vec4s.
 * k advances bk at a time through shared memory, with the next tile's global loads issued
 * into registers before the current tile is consumed.
 *
 * `aligned` (every dimension a multiple of its tile, leading dimensions multiples of 4)
 * selects vec4 global loads and stores without bounds checks; otherwise every load and store
 * is bounds-checked, so any M, N, K work.
 * @module
 */

/** Tile shape of the generated kernel. */
export interface MatmulTile {
  /** Rows of C per workgroup. */
  bm: number;
  /** Columns of C per workgroup. */
  bn: number;
  /** Depth of one shared-memory step. */
  bk: number;
  /** Rows of C per thread (multiple of 4). */
  tm: number;
  /** Columns of C per thread (multiple of 4). */
  tn: number;
}

/** Everything baked into one matmul shader (and so its cache key). */
export interface MatmulConfig extends MatmulTile {
  /** A is stored [K, M] instead of [M, K]. */
  transA: boolean;
  /** B is stored [N, K] instead of [K, N]. */
  transB: boolean;
  /** C += alpha·op(A)·op(B) instead of C = alpha·op(A)·op(B). */
  accumulate: boolean;
  /** vec4 loads and stores, no bounds checks (see module doc). */
  aligned: boolean;
}

/** Cache key naming every baked parameter. */
export function matmulKey(c: MatmulConfig): string {
  return `matmul:${c.bm}x${c.bn}x${c.bk}/${c.tm}x${c.tn}` +
    `${c.transA ? ":tA" : ""}${c.transB ? ":tB" : ""}${c.accumulate ? ":acc" : ""}${
      c.aligned ? ":v4" : ""
    }`;
}

/** Threads per workgroup in x (columns) and y (rows). */
export function matmulThreads(t: MatmulTile): [number, number] {
  return [t.bn / t.tn, t.bm / t.tm];
}

/** Checks that a tile can be generated; throws naming the rule broken. */
export function validateTile(t: MatmulTile): void {
  const [tx, ty] = matmulThreads(t);
  const threads = tx * ty;
  const rules: [boolean, string][] = [
    [t.tm % 4 === 0 && t.tn % 4 === 0, "tm and tn must be multiples of 4"],
    [Number.isInteger(tx) && Number.isInteger(ty), "bm/tm and bn/tn must be integers"],
    [t.bk % 4 === 0, "bk must be a multiple of 4"],
    [
      (t.bm * t.bk) % (4 * threads) === 0 && (t.bn * t.bk) % (4 * threads) === 0,
      "bm·bk and bn·bk must be multiples of 4·threads",
    ],
  ];
  for (const [ok, rule] of rules) {
    if (!ok) throw new Error(`Invalid matmul tile ${JSON.stringify(t)}: ${rule}`);
  }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * Generated loads of one operand tile into registers (`fetch`) and from registers into
 * shared memory (`store`). The operand tile is `rows`×bk (A: rows = bm; B: rows = bn), held
 * in shared memory k-major as `sh[k·rows + r]`. `kMajorInMemory` says whether consecutive
 * addresses in global memory run along r (A transposed, B plain) or along k.
 */
function tileLoader(
  o: { name: string; sh: string; rows: number; bk: number; threads: number; aligned: boolean },
  kMajorInMemory: boolean,
  rowBase: string,
  ld: string,
  limitRows: string,
): { setup: string; fetch: string; store: string } {
  const { name, sh, rows, bk, threads, aligned } = o;
  const setup: string[] = [];
  const fetch: string[] = [];
  const store: string[] = [];
  if (aligned) {
    const perThread = (rows * bk) / (4 * threads);
    for (const l of range(perThread)) {
      const e = `(tid + ${l * threads}u)`;
      if (kMajorInMemory) {
        // vec4 along r: element (k, r..r+3) at [(k0 + k)·ld + rowBase + r]
        setup.push(
          `let ${name}${l}_k = ${e} / ${rows / 4}u; let ${name}${l}_r = (${e} % ${
            rows / 4
          }u) * 4u;`,
        );
        fetch.push(
          `${name}r${l} = ${name}4[(${name}Base + (k0 + ${name}${l}_k) * ${ld} + ${rowBase} + ${name}${l}_r) / 4u];`,
        );
        store.push(`${sh}[(${name}${l}_k * ${rows}u + ${name}${l}_r) / 4u] = ${name}r${l};`);
      } else {
        // vec4 along k: element (r, k..k+3) at [(rowBase + r)·ld + k0 + k]
        setup.push(
          `let ${name}${l}_r = ${e} / ${bk / 4}u; let ${name}${l}_k = (${e} % ${bk / 4}u) * 4u;`,
        );
        fetch.push(
          `${name}r${l} = ${name}4[(${name}Base + (${rowBase} + ${name}${l}_r) * ${ld} + k0 + ${name}${l}_k) / 4u];`,
        );
        for (const j of range(4)) {
          const idx = `(${name}${l}_k + ${j}u) * ${rows}u + ${name}${l}_r`;
          store.push(`${sh}[(${idx}) / 4u][(${idx}) % 4u] = ${name}r${l}[${j}];`);
        }
      }
    }
  } else {
    const perThread = (rows * bk) / threads;
    for (const l of range(perThread)) {
      const e = `(tid + ${l * threads}u)`;
      const [kExpr, rExpr] = kMajorInMemory
        ? [`${e} / ${rows}u`, `${e} % ${rows}u`]
        : [`${e} % ${bk}u`, `${e} / ${bk}u`];
      setup.push(`let ${name}${l}_k = ${kExpr}; let ${name}${l}_r = ${rExpr};`);
      fetch.push(
        `let ${name}${l}_gk = k0 + ${name}${l}_k; let ${name}${l}_gr = ${rowBase} + ${name}${l}_r;`,
      );
      const addr = kMajorInMemory
        ? `${name}Base + ${name}${l}_gk * ${ld} + ${name}${l}_gr`
        : `${name}Base + ${name}${l}_gr * ${ld} + ${name}${l}_gk`;
      fetch.push(
        `${name}r${l} = 0.0; if (${name}${l}_gk < p.k && ${name}${l}_gr < ${limitRows}) { ${name}r${l} = ${name}[${addr}]; }`,
      );
      const idx = `${name}${l}_k * ${rows}u + ${name}${l}_r`;
      store.push(`${sh}[(${idx}) / 4u][(${idx}) % 4u] = ${name}r${l};`);
    }
  }
  return { setup: setup.join("\n  "), fetch: fetch.join("\n    "), store: store.join("\n    ") };
}

/** Generates the WGSL of one matmul configuration. */
export function matmulWgsl(c: MatmulConfig): string {
  validateTile(c);
  const [tx, ty] = matmulThreads(c);
  const threads = tx * ty;
  const scalar = c.aligned ? "vec4<f32>" : "f32";
  const common = { bk: c.bk, threads, aligned: c.aligned };
  const a = tileLoader(
    { name: "a", sh: "As", rows: c.bm, ...common },
    c.transA,
    "row0",
    "p.lda",
    "p.m",
  );
  const b = tileLoader(
    { name: "b", sh: "Bs", rows: c.bn, ...common },
    !c.transB,
    "col0",
    "p.ldb",
    "p.n",
  );
  const perA = c.aligned ? (c.bm * c.bk) / (4 * threads) : (c.bm * c.bk) / threads;
  const perB = c.aligned ? (c.bn * c.bk) / (4 * threads) : (c.bn * c.bk) / threads;
  const regDecl = [
    ...range(perA).map((l) => `var ar${l}: ${scalar};`),
    ...range(perB).map((l) => `var br${l}: ${scalar};`),
  ].join(" ");
  const rowGroups = c.tm / 4, colGroups = c.tn / 4;
  // thread row r (0..tm) ↦ tile row (r/4)·ty·4 + ty_id·4 + r%4; same for columns.
  const accDecl = range(c.tm).flatMap((r) =>
    range(colGroups).map((g) => `var acc${r}_${g} = vec4<f32>(0.0);`)
  );
  const step = range(c.bk).map((k) => {
    const lines: string[] = [];
    for (const gi of range(rowGroups)) {
      lines.push(`let a${gi} = As[${(k * c.bm) / 4 + gi * ty}u + ty];`);
    }
    for (const g of range(colGroups)) {
      lines.push(`let b${g} = Bs[${(k * c.bn) / 4 + g * tx}u + tx];`);
    }
    for (const r of range(c.tm)) {
      for (const g of range(colGroups)) {
        lines.push(`acc${r}_${g} = fma(vec4<f32>(a${r >> 2}[${r & 3}]), b${g}, acc${r}_${g});`);
      }
    }
    return `{\n      ${lines.join("\n      ")}\n    }`;
  }).join("\n    ");
  const stores = range(c.tm).flatMap((r) =>
    range(colGroups).map((g) => {
      const row = `row0 + ${(r >> 2) * ty * 4 + (r & 3)}u + ty * 4u`;
      const col = `col0 + ${g * tx * 4}u + tx * 4u`;
      if (c.aligned) {
        const idx = `(cBase + (${row}) * p.ldc + ${col}) / 4u`;
        return c.accumulate
          ? `C[${idx}] = fma(vec4<f32>(p.alpha), acc${r}_${g}, C[${idx}]);`
          : `C[${idx}] = p.alpha * acc${r}_${g};`;
      }
      return `{ let row = ${row}; let col = ${col};\n    if (row < p.m) {\n` +
        range(4).map((j) => {
          const idx = `cBase + row * p.ldc + col + ${j}u`;
          const value = c.accumulate
            ? `fma(p.alpha, acc${r}_${g}[${j}], C[${idx}])`
            : `p.alpha * acc${r}_${g}[${j}]`;
          return `      if (col + ${j}u < p.n) { C[${idx}] = ${value}; }`;
        }).join("\n") + `\n    } }`;
    })
  ).join("\n    ");
  const arr = c.aligned ? "array<vec4<f32>>" : "array<f32>";
  const names = c.aligned ? ["a4", "b4"] : ["a", "b"];
  return /* wgsl */ `// generated by shaders/matmul.ts: ${matmulKey(c)}
struct Params {
  m: u32, n: u32, k: u32,
  lda: u32, ldb: u32, ldc: u32,
  strideA: u32, strideB: u32, strideC: u32,
  alpha: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ${names[0]}: ${arr};
@group(0) @binding(2) var<storage, read> ${names[1]}: ${arr};
@group(0) @binding(3) var<storage, read_write> C: ${arr};

var<workgroup> As: array<vec4<f32>, ${(c.bm * c.bk) / 4}>; // [bk][bm] k-major
var<workgroup> Bs: array<vec4<f32>, ${(c.bn * c.bk) / 4}>; // [bk][bn] k-major

@compute @workgroup_size(${tx}, ${ty}, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tx = lid.x;
  let ty = lid.y;
  let tid = ty * ${tx}u + tx;
  let row0 = wg.y * ${c.bm}u;
  let col0 = wg.x * ${c.bn}u;
  let aBase = wg.z * p.strideA;
  let bBase = wg.z * p.strideB;
  let cBase = wg.z * p.strideC;
  ${accDecl.join("\n  ")}
  ${regDecl}
  ${a.setup}
  ${b.setup}
  let tiles = (p.k + ${c.bk - 1}u) / ${c.bk}u;
  var k0 = 0u;
  if (tiles > 0u) {
    ${a.fetch}
    ${b.fetch}
    ${a.store}
    ${b.store}
  }
  workgroupBarrier();
  for (var t = 0u; t < tiles; t++) {
    k0 = (t + 1u) * ${c.bk}u;
    let more = t + 1u < tiles;
    if (more) {
    ${a.fetch}
    ${b.fetch}
    }
    ${step}
    workgroupBarrier();
    if (more) {
    ${a.store}
    ${b.store}
    }
    workgroupBarrier();
  }
  ${stores}
}
`;
}
