/**
 * The recording strategies of CommandQueue (uniform arena, bind group cache, shared compute
 * passes) in every combination: many dispatches with distinct uniforms in one submit, chains
 * through storage inside one pass, copies between dispatches, row views at several offsets and
 * uniforms in several groups all give the exact expected values.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { downloadTensors, emptyTensor, type Gpu, type Kernel, uploadTensor } from "../mod.ts";
import { copyTensor } from "../lib/gpu/tensor.ts";
import { DEFAULT_RECORDING, type RecordingOptions } from "../lib/gpu/commands.ts";
import { BindGroupCache } from "../lib/gpu/bind_group_cache.ts";
import { testGpu } from "./_gpu.ts";

const AFFINE = `struct P { i: u32, a: f32, b: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(1) fn main() { dst[p.i] = p.a * src[p.i] + p.b; }`;

// chain: x[0] = x[0] * m + c, so every dispatch must see the previous one's write
const STEP = `struct S { m: f32, c: f32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> s: S;
@compute @workgroup_size(1) fn main() { x[0] = x[0] * s.m + s.c; }`;

const FILL_ROW = `struct V { v: f32 }
@group(0) @binding(0) var<uniform> p: V;
@group(0) @binding(1) var<storage, read_write> row: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  row[g.x] = p.v;
}`;

// uniforms in two groups, declared out of binding order (dynamic offsets go in binding order)
const GROUPS = `struct A { a: f32 }
struct B { b: f32 }
struct C { c: f32, at: u32 }
@group(0) @binding(2) var<uniform> q: B;
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(1) @binding(0) var<uniform> r: C;
@group(0) @binding(1) var<uniform> p: A;
@compute @workgroup_size(1) fn main() { out[r.at] = p.a * 100.0 + q.b * 10.0 + r.c; }`;

const COMBOS: RecordingOptions[] = [false, true].flatMap((uniformArena) =>
  [false, true].flatMap((bindGroupCache) =>
    [false, true].map((sharedPasses) => ({ uniformArena, bindGroupCache, sharedPasses }))
  )
);

async function kernels(gpu: Gpu): Promise<Record<string, Kernel>> {
  const [affine, step, fillRow, groups] = await Promise.all(
    [["affine", AFFINE], ["step", STEP], ["fill_row", FILL_ROW], ["groups", GROUPS]].map((
      [key, code],
    ) => gpu.kernels.get({ key: `test:recording:${key}`, code })),
  );
  return { affine, step, fillRow, groups };
}

/** Records one submit's worth of mixed work and checks every value exactly. */
async function mixedSubmit(gpu: Gpu, k: Record<string, Kernel>, label: string): Promise<void> {
  const n = 1300; // more uniform slices than one arena chunk holds (1024 of 256 B)
  const src = uploadTensor(gpu, Float32Array.from({ length: n }, (_, i) => i % 17), [n]);
  const dst = emptyTensor(gpu, [n]); // NaN-filled: an element no dispatch writes stays NaN
  const x = uploadTensor(gpu, [0], [1]);
  const copied = emptyTensor(gpu, [1]);
  const rows = emptyTensor(gpu, [4, 64]); // 256 B rows: every row view is bindable
  const out = emptyTensor(gpu, [3]);
  const expected = new Float32Array(n);
  let chain = 0;
  for (let i = 0; i < n; i++) {
    const a = (i % 7) - 3, b = i * 0.5;
    gpu.commands.dispatch(k.affine, { bindings: { p: { i, a, b }, src, dst }, workgroups: [1] });
    expected[i] = a * (i % 17) + b;
    if (i % 5 === 0) {
      const [m, c] = chainStep(i);
      gpu.commands.dispatch(k.step, { bindings: { x, s: { m, c } }, workgroups: [1] });
      chain = chain * m + c;
    }
    if (i === 600) copyTensor(gpu, x, copied); // a copy between dispatches ends a shared pass
  }
  const chainAt600 = chainValue(601);
  for (let r = 0; r < 4; r++) {
    gpu.commands.dispatch(k.fillRow, {
      bindings: { p: { v: r + 1 }, row: rows.rows(r, 1) },
      workgroups: [1],
    });
  }
  for (let j = 0; j < 3; j++) {
    gpu.commands.dispatch(k.groups, {
      bindings: { out, p: { a: j + 1 }, q: { b: j + 4 }, r: { c: j + 7, at: j } },
      workgroups: [1],
    });
  }
  equal(gpu.commands.hasPendingWork, true, `${label}: still one pending submit`);
  const [gotDst, gotX, gotCopied, gotRows, gotOut] = await downloadTensors(
    gpu,
    [dst, x, copied, rows, out],
  );
  deepEqual(Array.from(gotDst), Array.from(expected), `${label}: affine dispatches`);
  deepEqual(Array.from(gotX), [chain], `${label}: chain through storage`);
  deepEqual(Array.from(gotCopied), [chainAt600], `${label}: copy between dispatches`);
  deepEqual(
    Array.from(gotRows),
    Array.from({ length: 256 }, (_, i) => Math.floor(i / 64) + 1),
    `${label}: row views`,
  );
  deepEqual(Array.from(gotOut), [147, 258, 369], `${label}: uniforms in two groups`);
  for (const t of [src, dst, x, copied, rows, out]) t.release();
}

/** Multiplier and addend of the chain at iteration `i`: sign flips make the order matter. */
function chainStep(i: number): [number, number] {
  return [i % 10 === 0 ? -1 : 1, i % 3];
}

/** The chain's value after the dispatches of iterations 0 … `iterations - 1`. */
function chainValue(iterations: number): number {
  let chain = 0;
  for (let i = 0; i < iterations; i += 5) {
    const [m, c] = chainStep(i);
    chain = chain * m + c;
  }
  return chain;
}

Deno.test("every recording combination gives exact results for one large mixed submit", async () => {
  const gpu = await testGpu();
  const k = await kernels(gpu);
  const every = gpu.commands.autoSubmitEvery;
  gpu.commands.autoSubmitEvery = 1 << 20;
  try {
    for (const combo of COMBOS) {
      gpu.commands.setRecording(combo);
      const label = JSON.stringify(combo);
      await mixedSubmit(gpu, k, label);
      await mixedSubmit(gpu, k, `${label}, again (cached bind groups, reused buffers)`);
    }
  } finally {
    gpu.commands.autoSubmitEvery = every;
    gpu.commands.setRecording(DEFAULT_RECORDING);
  }
  ok(gpu.commands.bindGroupStats.hits > 0, "the cache answered some lookups");
});

Deno.test("a repeated step-like sequence creates no bind groups after the first rounds", async () => {
  const gpu = await testGpu();
  const k = await kernels(gpu);
  const src = uploadTensor(gpu, Float32Array.from({ length: 64 }, (_, i) => i), [64]);
  const round = async () => {
    const temps = [];
    let x = src;
    for (let i = 0; i < 6; i++) { // temporaries released out of order, some mid-encoder
      const y = emptyTensor(gpu, [64]);
      gpu.commands.dispatch(k.affine, {
        bindings: { p: { i: 5, a: 2, b: i }, src: x, dst: y },
        workgroups: [1],
      });
      temps.push(y);
      x = y;
      if (i === 3) temps.splice(1, 1)[0].release();
      if (i === 4) gpu.commands.submit();
    }
    const [got] = await downloadTensors(gpu, [x]);
    for (const t of temps) t.release();
    return got[5];
  };
  gpu.commands.setRecording({ bindGroupCache: true });
  const before = gpu.commands.bindGroupStats;
  const values = [];
  for (let r = 0; r < 3; r++) values.push(await round());
  const warm = gpu.commands.bindGroupStats;
  values.push(await round());
  const after = gpu.commands.bindGroupStats;
  gpu.commands.setRecording(DEFAULT_RECORDING);
  const expected = [0, 1, 2, 3, 4, 5].reduce((v, b) => 2 * v + b, 5); // y = 2x + i from src[5]
  deepEqual(values, [expected, expected, expected, expected]);
  ok(warm.misses > before.misses, "the first rounds created bind groups");
  equal(after.misses, warm.misses, "a repeated round creates none");
  equal(after.hits - warm.hits, 6);
  src.release();
});

Deno.test("setRecording submits recorded work first; the default is the arena alone", async () => {
  const gpu = await testGpu();
  deepEqual(gpu.commands.recording, DEFAULT_RECORDING);
  deepEqual(DEFAULT_RECORDING, { uniformArena: true, bindGroupCache: false, sharedPasses: false });
  const k = await kernels(gpu);
  const x = uploadTensor(gpu, [1], [1]);
  gpu.commands.dispatch(k.step, { bindings: { x, s: { m: 3, c: 1 } }, workgroups: [1] });
  ok(gpu.commands.hasPendingWork);
  gpu.commands.setRecording({ sharedPasses: true });
  equal(gpu.commands.hasPendingWork, false, "switching submitted the pending dispatch");
  gpu.commands.dispatch(k.step, { bindings: { x, s: { m: 3, c: 1 } }, workgroups: [1] });
  gpu.commands.setRecording(DEFAULT_RECORDING);
  deepEqual(Array.from((await downloadTensors(gpu, [x]))[0]), [13]);
  x.release();
});

Deno.test("bind group cache: same buffers hit, other offsets miss, least recently used goes", async () => {
  const gpu = await testGpu();
  const k = await kernels(gpu);
  const cache = new BindGroupCache(gpu.device, 2);
  const t = emptyTensor(gpu, [4, 64]);
  const uniform = gpu.device.createBuffer({ size: 256, usage: GPUBufferUsage.UNIFORM });
  const entries = (row: number) => [
    { binding: 0, resource: { buffer: uniform, offset: 0, size: 16 } },
    { binding: 1, resource: { buffer: t.buffer, offset: row * 256, size: 256 } },
  ];
  const g0 = cache.get(k.fillRow.layouts[0], entries(0));
  equal(cache.get(k.fillRow.layouts[0], entries(0)), g0, "same entries: same bind group");
  const g1 = cache.get(k.fillRow.layouts[0], entries(1));
  ok(g1 !== g0, "another offset: another bind group");
  cache.get(k.fillRow.layouts[0], entries(0)); // 0 is now the most recently used
  cache.get(k.fillRow.layouts[0], entries(2)); // evicts 1
  equal(cache.size, 2);
  equal(cache.get(k.fillRow.layouts[0], entries(0)), g0, "kept");
  ok(cache.get(k.fillRow.layouts[0], entries(1)) !== g1, "evicted, created afresh");
  deepEqual([cache.hits, cache.misses], [3, 4]);
  uniform.destroy();
  t.release();
});
