import { equal, rejects, throws } from "node:assert/strict";
import { downloadTensor, emptyTensor, matmul, uploadTensor, writeTensor } from "../mod.ts";
import { copyTensor, downloadTensorsInto } from "../lib/gpu/tensor.ts";
import { fill } from "../lib/ops/activation/activation.ts";
import { matmulReference, randomArray } from "../lib/testing/reference.ts";
import { assertClose } from "../lib/testing/assert_close.ts";
import { testGpu } from "./_gpu.ts";

Deno.test("row views: host writes, copies and reads land in their rows only", async () => {
  const gpu = await testGpu();
  const t = emptyTensor(gpu, [5, 3]); // NaN-filled
  await fill(gpu, t, { value: 0 });
  const middle = t.rows(1, 3); // [3, 3] from byte 12
  equal(middle.byteOffset, 12);
  writeTensor(middle.rows(1, 1), [7, 8, 9]); // row 2 of t
  const src = uploadTensor(gpu, [1, 2, 3], [1, 3]);
  copyTensor(gpu, src, t.rows(4, 1));
  const got = await downloadTensor(gpu, t);
  assertClose(got, [0, 0, 0, 0, 0, 0, 7, 8, 9, 0, 0, 0, 1, 2, 3], { rms: 0, label: "rows" });
  const read = await downloadTensor(gpu, t.rows(2, 1));
  assertClose(read, [7, 8, 9], { rms: 0, label: "view read" });
  src.release();
  t.release();
});

Deno.test("a matmul reads and writes 256-byte-aligned row views of larger tensors", async () => {
  const gpu = await testGpu();
  const [rows, k, n] = [192, 64, 37]; // 64 rows of a [*, 64] f32 tensor = 16 KiB: aligned
  const a = randomArray(rows * k, 1);
  const w = randomArray(n * k, 2);
  const A = uploadTensor(gpu, a, [rows, k]);
  const W = uploadTensor(gpu, w, [n, k]);
  const C = emptyTensor(gpu, [rows, n]);
  await fill(gpu, C, { value: 0 });
  for (let start = 0; start < rows; start += 64) {
    // C rows start … start + 63 = A rows · Wᵀ; C's views start at 64·37·4 B = 9472 = 37·256
    await matmul(gpu, A.rows(start, 64), W, { transB: true, out: C.rows(start, 64) });
  }
  const ref = matmulReference(a, w, { m: rows, n, k, transB: true });
  assertClose(await downloadTensor(gpu, C), ref, { rms: 1e-6, label: "chunked matmul" });
  for (const x of [A, W, C]) x.release();
});

Deno.test("views: bad ranges, misaligned bindings and releases give one-line errors", async () => {
  const gpu = await testGpu();
  const t = emptyTensor(gpu, [10, 3]);
  throws(() => t.rows(8, 3), /Tensor \[10, 3\]: rows 8 … 10 must lie within its first dimension/);
  throws(() => t.rows(-1, 2), /must lie within its first dimension/);
  const view = t.rows(1, 4);
  throws(
    () => view.release(),
    /Tensor view \[4, 3\] cannot be released: release the tensor it views/,
  );
  const w = uploadTensor(gpu, new Float32Array(9), [3, 3]);
  await rejects(
    () => matmul(gpu, view, w),
    /view \[4, 3\] starts at byte 12, not a multiple of minStorageBufferOffsetAlignment 256/,
  );
  throws(
    () => copyTensor(gpu, t.rows(0, 2), w),
    /copyTensor: source \[2, 3\] f32 and destination \[3, 3\] f32 differ in size/,
  );
  w.release();
  t.release();
});

Deno.test("a tensor smaller than one vec4 binds to an array<vec4<f32>> (minimum from the WGSL)", async () => {
  const gpu = await testGpu();
  const kernel = await gpu.kernels.get({
    key: "test|vec4-min-binding",
    code: `
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(1) fn main() { y[0] = x[0].x * 2.0; }`,
  });
  equal(kernel.bindings.get("x")!.minBindingBytes, 16);
  equal(kernel.bindings.get("y")!.minBindingBytes, 4);
  const x = uploadTensor(gpu, [21], [1]); // 4 bytes: the binding spans 16 of its buffer
  const y = emptyTensor(gpu, [1]);
  gpu.device.pushErrorScope("validation");
  gpu.commands.dispatch(kernel, { bindings: { x, y }, workgroups: [1, 1, 1] });
  const got = await downloadTensor(gpu, y);
  equal((await gpu.device.popErrorScope())?.message, undefined);
  equal(got[0], 42);
  x.release();
  y.release();
});

Deno.test("downloadTensorsInto reads f32 tensors and views into a host buffer at offsets", async () => {
  const gpu = await testGpu();
  const a = uploadTensor(gpu, [1, 2, 3], [3]);
  const b = uploadTensor(gpu, [4, 5, 6, 7, 8, 9, 10, 11], [4, 2]);
  const dest = new Float32Array(12).fill(-1);
  const got = await downloadTensorsInto(gpu, [a, b.rows(2, 2)], dest, [8, 1]);
  equal(got, dest);
  assertClose(dest, [-1, 8, 9, 10, 11, -1, -1, -1, 1, 2, 3, -1], { rms: 0, label: "into" });
  const packed = await downloadTensorsInto(gpu, [b, a], new Float32Array(11));
  assertClose(packed, [4, 5, 6, 7, 8, 9, 10, 11, 1, 2, 3], { rms: 0, label: "packed" });
  const ids = uploadTensor(gpu, [1, 2], [2], "u32");
  throws(
    () => downloadTensorsInto(gpu, [ids], new Float32Array(2)),
    /downloadTensorsInto: u32 tensor \[2\] at element 0 does not fit an f32 destination of 2/,
  );
  throws(
    () => downloadTensorsInto(gpu, [a], new Float32Array(4), [2]),
    /f32 tensor \[3\] at element 2 does not fit an f32 destination of 4/,
  );
  for (const t of [a, b, ids]) t.release();
});
