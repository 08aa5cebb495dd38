import { deepEqual, equal, match, ok, rejects, throws } from "node:assert/strict";
import {
  BufferPool,
  downloadTensor,
  downloadTensors,
  emptyTensor,
  GpuProfiler,
  matmul,
  openDevice,
  reflectEntry,
  resolveGpuChoice,
  uploadTensor,
} from "../mod.ts";
import { bucketSize } from "../lib/gpu/pool.ts";
import { closeStats } from "../lib/testing/assert_close.ts";
import { testGpu } from "./_gpu.ts";

Deno.test("device exposes implementation, adapter and features", async () => {
  const gpu = await testGpu();
  ok(gpu.implementation === "deno" || gpu.implementation === "dawn");
  ok(gpu.adapterName.length > 0);
  ok(gpu.limits.maxComputeInvocationsPerWorkgroup >= 256, "adapter limits were requested");
  ok(gpu.features instanceof Set);
});

Deno.test("an unknown implementation is rejected with the rule", async () => {
  throws(
    () => resolveGpuChoice("cuda"),
    /Unknown WebGPU implementation "cuda": gpu must be "deno", "dawn" or "auto"/,
  );
  await rejects(
    () => openDevice({ gpu: "metal" as "deno" }),
    /Unknown WebGPU implementation "metal"/,
  );
});

Deno.test("pool buckets sizes and reuses released buffers", () => {
  equal(bucketSize(1), 256);
  equal(bucketSize(65536), 65536);
  equal(bucketSize(65537), 65536 + 8192);
  ok(bucketSize(1e9) >= 1e9 && bucketSize(1e9) <= 1e9 * 1.125);
  throws(() => bucketSize(-1), /Invalid buffer size -1/);
});

Deno.test("pool NaN-fills every buffer it hands out, fresh or reused", async () => {
  const gpu = await testGpu();
  equal(gpu.pool.nanFill, true);
  const t = uploadTensor(gpu, new Float32Array(1000).fill(7), [1000]);
  const buffer = t.buffer;
  t.release();
  gpu.commands.submit();
  const again = emptyTensor(gpu, [1000]);
  equal(again.buffer, buffer, "released buffer is reused");
  const data = await downloadTensor(gpu, again);
  ok(data.every(Number.isNaN), "reused buffer is NaN-filled");
  equal(closeStats(data, new Float64Array(1000)).nonFinite, 1000);
  again.release();
});

Deno.test("pool without NaN fill tracks bytes in use and the peak", async () => {
  const gpu = await testGpu();
  const pool = new BufferPool(gpu.device);
  const a = pool.acquire(1000, GPUBufferUsage.STORAGE);
  const b = pool.acquire(3000, GPUBufferUsage.STORAGE);
  equal(pool.inUseBytes, 1024 + 3072);
  pool.release(a);
  equal(pool.inUseBytes, 3072);
  equal(pool.peakInUseBytes, 4096);
  equal(pool.acquire(900, GPUBufferUsage.STORAGE), a);
  pool.release(b);
  pool.clear();
});

Deno.test("pool hands out the oldest free buffer of a bucket first, whatever the release order", async () => {
  const gpu = await testGpu();
  const pool = new BufferPool(gpu.device);
  const [a, b, c] = [0, 1, 2].map(() => pool.acquire(512, GPUBufferUsage.STORAGE));
  for (const x of [c, a, b]) pool.release(x);
  const order = [0, 1, 2].map(() => [a, b, c].indexOf(pool.acquire(500, GPUBufferUsage.STORAGE)));
  deepEqual(order, [0, 1, 2], "identities, oldest first");
  for (const x of [b, c, a]) pool.release(x, true); // still used by unsubmitted work
  const fresh = pool.acquire(512, GPUBufferUsage.STORAGE, false);
  ok(![a, b, c].includes(fresh), "a host write never gets a busy buffer");
  pool.idle();
  equal(pool.acquire(512, GPUBufferUsage.STORAGE, false), a, "oldest first once idle");
  for (const x of [a, fresh]) pool.release(x);
  pool.clear();
});

Deno.test("downloads batch many tensors and dtypes in one readback", async () => {
  const gpu = await testGpu();
  const f = uploadTensor(gpu, [1.5, -2, 3], [3]);
  const h = uploadTensor(gpu, [0.5, 0.25, -8], [3], "f16");
  const u = uploadTensor(gpu, [1, 2, 4294967295], [3], "u32");
  const i = uploadTensor(gpu, [-1, 0, 7], [3], "i32");
  const [df, dh, du, di] = await downloadTensors(gpu, [f, h, u, i]);
  deepEqual(Array.from(df), [1.5, -2, 3]);
  deepEqual(Array.from(dh), [0.5, 0.25, -8]);
  deepEqual(Array.from(du), [1, 2, 4294967295]);
  deepEqual(Array.from(di), [-1, 0, 7]);
  throws(
    () => uploadTensor(gpu, [1, 2], [3]),
    /Cannot write 2 values into a tensor of shape \[3\]/,
  );
  throws(() => emptyTensor(gpu, [2, -1]), /Invalid shape \[2, -1\]/);
  for (const t of [f, h, u, i]) t.release();
});

Deno.test("kernel bindings and workgroup size come from the WGSL", async () => {
  const code = `struct P { n: u32, s: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(64, 2) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * 64u;
  if (i < p.n) { dst[i] = p.s * src[i]; }
}`;
  const r = reflectEntry(code);
  deepEqual(r.workgroupSize, [64, 2, 1]);
  deepEqual(
    r.bindings.map((b) => [b.name, b.binding, b.kind]).sort(),
    [["dst", 2, "storage"], ["p", 0, "uniform"], ["src", 1, "read-only-storage"]],
  );
  const gpu = await testGpu();
  const kernel = await gpu.kernels.get({ key: "test:scale", code });
  const src = uploadTensor(gpu, [1, 2, 3], [3]), dst = emptyTensor(gpu, [3]);
  gpu.commands.dispatch(kernel, { bindings: { p: { n: 3, s: -2 }, src, dst }, workgroups: [1] });
  deepEqual(Array.from(await downloadTensor(gpu, dst)), [-2, -4, -6]);
  throws(
    () => gpu.commands.dispatch(kernel, { bindings: { p: { n: 3, s: 1 }, src }, workgroups: [1] }),
    /Missing binding "dst"/,
  );
  throws(
    () => gpu.commands.dispatch(kernel, { bindings: { p: { n: 3 }, src, dst }, workgroups: [1] }),
    /Missing uniform p.s/,
  );
  throws(
    () =>
      gpu.commands.dispatch(kernel, {
        bindings: { p: { n: -1, s: 1 }, src, dst },
        workgroups: [1],
      }),
    /p.n = -1 is not a u32/,
  );
  await rejects(
    () =>
      gpu.kernels.get({ key: "test:broken", code: code.replace("p.s * src[i]", "p.s * nope[i]") }),
    /WGSL compilation failed for test:broken/,
  );
  match(String(gpu.kernels.size), /^\d+$/);
  src.release();
  dst.release();
});

Deno.test("profiler survives submits inside the profiled region", async () => {
  const gpu = await testGpu();
  if (!gpu.features.has("timestamp-query")) return;
  const code = `@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(1) fn main() { x[0] = x[0] + 1.0; }`;
  const kernel = await gpu.kernels.get({ key: "test:inc", code });
  const x = uploadTensor(gpu, [0], [1]);
  const profiler = new GpuProfiler(gpu).start();
  for (let i = 0; i < 3; i++) {
    gpu.commands.dispatch(kernel, { bindings: { x }, workgroups: [1], label: "inc" });
    gpu.commands.submit(); // a resolve per submit, at growing query counts
  }
  const entries = await profiler.stop();
  profiler.destroy();
  deepEqual(entries.map((e) => [e.label, e.count, e.times.length]), [["inc", 3, 3]]);
  ok(entries[0].times.every((t) => t >= 0 && Number.isFinite(t)));
  ok(profiler.spanMs >= Math.max(...entries[0].times), "the span covers every dispatch");
  deepEqual(Array.from(await downloadTensor(gpu, x)), [3]);
  x.release();
});

Deno.test("a buffer released mid-encoder serves GPU outputs at once, host writes after submit", async () => {
  const gpu = await testGpu();
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  const plain = new BufferPool(gpu.device);
  const a = plain.acquire(1024, usage);
  plain.release(a, true);
  equal(plain.acquire(1024, usage), a, "GPU-written output may reuse a busy buffer");
  plain.release(a, true);
  const b = plain.acquire(1024, usage, false);
  ok(b !== a, "a host write never gets a busy buffer");
  plain.idle();
  equal(plain.acquire(1024, usage, false), a, "after the submit it is free for host writes");
  plain.release(b);
  const filled = new BufferPool(gpu.device, { nanFill: true });
  const c = filled.acquire(1024, usage);
  filled.release(c, true);
  ok(filled.acquire(1024, usage) !== c, "the NaN fill is a host write too");
  plain.clear();
  filled.clear();
});

Deno.test("outputs written into a just-released input's buffer keep recorded reads intact", async () => {
  const gpu = await testGpu();
  const x = uploadTensor(gpu, [1, 2, 3, 4], [2, 2]);
  const y = await matmul(gpu, x, x); // reads x
  x.release(); // still read by the recorded matmul
  const z = await matmul(gpu, y, y); // may take x's buffer as its output
  deepEqual(Array.from(await downloadTensor(gpu, y)), [7, 10, 15, 22]);
  deepEqual(Array.from(await downloadTensor(gpu, z)), [199, 290, 435, 634]);
  y.release();
  z.release();
});

Deno.test("uploads never take a buffer that unsubmitted work still reads, and do not submit", async () => {
  const gpu = await testGpu();
  const x = uploadTensor(gpu, [1, 2, 3, 4], [2, 2]);
  const y = await matmul(gpu, x, x); // recorded, reads x
  x.release();
  const w = uploadTensor(gpu, [9, 9, 9, 9], [2, 2]); // must not overwrite x under the matmul
  ok(w.buffer !== x.buffer);
  ok(gpu.commands.hasPendingWork, "the upload did not submit the recorded matmul");
  deepEqual(Array.from(await downloadTensor(gpu, y)), [7, 10, 15, 22]);
  for (const t of [y, w]) t.release();
});

Deno.test("inside a Worker, auto takes the built-in implementation and dawn is refused", async () => {
  const dir = await Deno.makeTempDir();
  const script = `${dir}/rank.ts`;
  await Deno.writeTextFile(
    script,
    `import { openDevice } from "${new URL("../mod.ts", import.meta.url)}";
const auto = await openDevice({ gpu: "auto" });
let refused = "";
try { await openDevice({ gpu: "dawn" }); } catch (e) { refused = (e as Error).message; }
self.postMessage({ impl: auto.implementation, refused });
auto.destroy();`,
  );
  const worker = new Worker(new URL(`file://${script}`), { type: "module" });
  try {
    const reply = await new Promise<{ impl: string; refused: string }>((resolve, reject) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => reject(new Error(e.message));
    });
    equal(reply.impl, "deno");
    match(reply.refused, /Cannot use gpu "dawn" inside a Worker .*cli\/launch\.ts/);
  } finally {
    worker.terminate();
    await Deno.remove(dir, { recursive: true });
  }
});
