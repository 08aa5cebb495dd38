/**
 * Host cost of one trivial dispatch, split by WebGPU call, for one implementation: K dispatches
 * of a tiny kernel (one uniform, two storage bindings) recorded and submitted with the raw API
 * phase by phase, then through `CommandQueue.dispatch` under each recording setting; and the
 * round trips of `onSubmittedWorkDone`, of a 4-byte readback, and of a wait behind ≈ 20 ms of
 * GPU work (how late the promise resolves after the GPU is done). Every path's result is
 * checked exactly before its time counts.
 * @module
 */
import {
  downloadTensors,
  emptyTensor,
  type Gpu,
  GpuProfiler,
  type Kernel,
  type Tensor,
  uploadTensor,
  writeTensor,
} from "../mod.ts";
import { median } from "./_timing.ts";
import { RECORDING_SETTINGS } from "./_recording_settings.ts";

const ACC = `struct P { n: u32, s: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < p.n) { dst[g.x] = dst[g.x] + p.s * src[g.x]; }
}`;

const SPIN = `struct P { iters: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  var a = f32(g.x);
  for (var i = 0u; i < p.iters; i++) { a = fma(a, 0.999, 1.0); }
  out[g.x] = a;
}`;

const N = 256; // elements per dispatch: 4 workgroups of 64
const SPIN_GROUPS = 528;

/** What {@linkcode dispatchMicro} measured. */
export interface MicroResult {
  /** Dispatches per measurement. */
  dispatches: number;
  /** Host microseconds per dispatch, by row label. */
  hostUs: Record<string, number>;
  /** Milliseconds, by row label. */
  roundTripMs: Record<string, number>;
}

/** Measures the host cost per dispatch on `gpu` (medians over `repeats` runs of `dispatches`). */
export async function dispatchMicro(
  gpu: Gpu,
  options: { dispatches: number; repeats: number; roundTrips: number },
): Promise<MicroResult> {
  const K = options.dispatches;
  const kernel = await gpu.kernels.get({ key: "bench:host_overhead:acc", code: ACC });
  const src = uploadTensor(gpu, Float32Array.from({ length: N }, (_, i) => (i % 5) + 1), [N]);
  const dst = emptyTensor(gpu, [N]);
  const s = (i: number) => (i % 8) + 1;
  let sum = 0;
  for (let i = 0; i < K; i++) sum += s(i);
  const expected = Float32Array.from({ length: N }, (_, i) => sum * ((i % 5) + 1));
  const check = async (what: string) => {
    const [got] = await downloadTensors(gpu, [dst]);
    for (let i = 0; i < N; i++) {
      if (got[i] !== expected[i]) {
        throw new Error(`${what}: dst[${i}] = ${got[i]}, expected ${expected[i]}`);
      }
    }
  };
  const samples: Record<string, number[]> = {};
  const add = (label: string, ms: number) => (samples[label] ??= []).push((ms * 1000) / K);
  for (let r = 0; r < options.repeats; r++) {
    for (const [label, ms] of Object.entries(await rawPhases(gpu, kernel, { src, dst, K, s }))) {
      add(label, ms);
    }
    await check("raw API, one pass per dispatch");
    add(
      "shared pass: setPipeline + setBindGroup + dispatch",
      await sharedPass(gpu, kernel, { src, dst, K, s }),
    );
    await check("raw API, one shared pass");
    for (const [name, setting] of Object.entries(RECORDING_SETTINGS)) {
      gpu.commands.setRecording(setting);
      writeTensor(dst, new Float32Array(N));
      const t0 = performance.now();
      for (let i = 0; i < K; i++) {
        gpu.commands.dispatch(kernel, {
          bindings: { p: { n: N, s: s(i) }, src, dst },
          workgroups: [N / 64],
        });
      }
      gpu.commands.submit();
      add(`CommandQueue.dispatch + submit, ${name}`, performance.now() - t0);
      await check(`CommandQueue, ${name}`);
    }
    gpu.commands.setRecording(RECORDING_SETTINGS.all);
    add(
      "device.limits read",
      timeLoop(K, () => gpu.device.limits.maxComputeWorkgroupsPerDimension),
    );
    add("buffer.size + buffer.usage read", timeLoop(K, () => dst.buffer.size + dst.buffer.usage));
  }
  const hostUs = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
  const roundTripMs = await roundTrips(gpu, options.roundTrips);
  src.release();
  dst.release();
  return { dispatches: K, hostUs, roundTripMs };
}

function timeLoop(n: number, body: () => number): number {
  let sink = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) sink += body();
  const ms = performance.now() - t0;
  if (Number.isNaN(sink)) throw new Error("unreachable: keeps the loop");
  return ms;
}

interface RawArgs {
  src: Tensor;
  dst: Tensor;
  K: number;
  s: (i: number) => number;
}

/** The raw calls of the pre-fix recording, timed phase by phase (ms per phase for K). */
async function rawPhases(gpu: Gpu, kernel: Kernel, a: RawArgs): Promise<Record<string, number>> {
  const { device, pool } = gpu;
  const queue = device.queue;
  writeTensor(a.dst, new Float32Array(N));
  await gpu.commands.finish();
  const usage = GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST;
  const uniforms = Array.from({ length: a.K }, () => pool.acquire(16, usage, false));
  const data = Array.from({ length: a.K }, (_, i) => {
    const d = new DataView(new ArrayBuffer(16));
    d.setUint32(0, N, true);
    d.setFloat32(4, a.s(i), true);
    return d.buffer;
  });
  const arenaHost = new Uint8Array(a.K * 256);
  const arena = pool.acquire(arenaHost.byteLength, usage, false);
  const t0 = performance.now();
  for (let i = 0; i < a.K; i++) queue.writeBuffer(uniforms[i], 0, data[i]);
  const t1 = performance.now();
  const groups = uniforms.map((buffer) =>
    device.createBindGroup({
      layout: kernel.layouts[0],
      entries: [
        { binding: 0, resource: { buffer, offset: 0, size: 16 } },
        { binding: 1, resource: { buffer: a.src.buffer, offset: 0, size: N * 4 } },
        { binding: 2, resource: { buffer: a.dst.buffer, offset: 0, size: N * 4 } },
      ],
    })
  );
  const t2 = performance.now();
  const encoder = device.createCommandEncoder();
  for (let i = 0; i < a.K; i++) {
    const pass = encoder.beginComputePass({});
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, groups[i], [0]);
    pass.dispatchWorkgroups(N / 64);
    pass.end();
  }
  const t3 = performance.now();
  queue.submit([encoder.finish()]);
  const t4 = performance.now();
  queue.writeBuffer(arena, 0, arenaHost); // what the arena does instead of K writes
  const t5 = performance.now();
  await gpu.commands.finish();
  for (const b of [...uniforms, arena]) pool.release(b);
  return {
    "writeBuffer (16 B uniform, own buffer)": t1 - t0,
    "createBindGroup (1 uniform + 2 storage)": t2 - t1,
    "pass per dispatch: begin + setPipeline + setBindGroup + dispatch + end": t3 - t2,
    "encoder.finish + queue.submit": t4 - t3,
    "arena: one writeBuffer of K × 256 B": t5 - t4,
  };
}

/** K dispatches in one compute pass with one bind group and dynamic offsets (ms for K). */
async function sharedPass(gpu: Gpu, kernel: Kernel, a: RawArgs): Promise<number> {
  const { device, pool } = gpu;
  writeTensor(a.dst, new Float32Array(N));
  const arenaHost = new DataView(new ArrayBuffer(a.K * 256));
  for (let i = 0; i < a.K; i++) {
    arenaHost.setUint32(i * 256, N, true);
    arenaHost.setFloat32(i * 256 + 4, a.s(i), true);
  }
  const arena = pool.acquire(a.K * 256, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, false);
  device.queue.writeBuffer(arena, 0, arenaHost.buffer);
  const group = device.createBindGroup({
    layout: kernel.layouts[0],
    entries: [
      { binding: 0, resource: { buffer: arena, offset: 0, size: 16 } },
      { binding: 1, resource: { buffer: a.src.buffer, offset: 0, size: N * 4 } },
      { binding: 2, resource: { buffer: a.dst.buffer, offset: 0, size: N * 4 } },
    ],
  });
  const encoder = device.createCommandEncoder();
  const t0 = performance.now();
  const pass = encoder.beginComputePass({});
  for (let i = 0; i < a.K; i++) {
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, group, [i * 256]);
    pass.dispatchWorkgroups(N / 64);
  }
  pass.end();
  const ms = performance.now() - t0;
  device.queue.submit([encoder.finish()]);
  await gpu.commands.finish();
  pool.release(arena);
  return ms;
}

/** Medians of the waits for the GPU, in ms. */
async function roundTrips(gpu: Gpu, repeats: number): Promise<Record<string, number>> {
  const queue = gpu.device.queue;
  await gpu.commands.finish();
  const idle: number[] = [], readback: number[] = [];
  const one = uploadTensor(gpu, [1], [1]);
  for (let r = 0; r < repeats; r++) {
    let t0 = performance.now();
    await queue.onSubmittedWorkDone();
    idle.push(performance.now() - t0);
    t0 = performance.now();
    await downloadTensors(gpu, [one]);
    readback.push(performance.now() - t0);
  }
  one.release();
  const out: Record<string, number> = {
    "onSubmittedWorkDone, idle queue": median(idle),
    "downloadTensors of 4 B (copy, submit, mapAsync)": median(readback),
  };
  if (gpu.features.has("timestamp-query")) Object.assign(out, await busyWait(gpu, repeats));
  return out;
}

/**
 * A spin kernel calibrated to ≈ 20 ms of GPU time (timestamps); the wall time from its submit
 * to the resolution of `onSubmittedWorkDone`, minus the GPU time, is how late the promise
 * comes after the work is done.
 */
async function busyWait(gpu: Gpu, repeats: number): Promise<Record<string, number>> {
  const kernel = await gpu.kernels.get({ key: "bench:host_overhead:spin", code: SPIN });
  const out = emptyTensor(gpu, [SPIN_GROUPS * 64]);
  const profiler = new GpuProfiler(gpu, 1);
  const run = async (iters: number) => {
    profiler.start();
    gpu.commands.dispatch(kernel, { bindings: { p: { iters }, out }, workgroups: [SPIN_GROUPS] });
    const t0 = performance.now();
    gpu.commands.submit();
    await gpu.device.queue.onSubmittedWorkDone();
    const wall = performance.now() - t0;
    await profiler.stop();
    return { wall, gpu: profiler.dispatchTimes[0] };
  };
  try {
    let iters = 1024, ms = (await run(iters)).gpu;
    while (ms < 5 && iters < 2 ** 28) ms = (await run(iters *= 4)).gpu;
    if (!(ms > 0)) return {}; // timestamps that do not advance (software adapters)
    iters = Math.min(2 ** 31, Math.round((iters * 20) / ms));
    const walls: number[] = [], gpus: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const t = await run(iters);
      walls.push(t.wall);
      gpus.push(t.gpu);
    }
    return {
      "spin kernel: GPU time (timestamps)": median(gpus),
      "spin kernel: submit → onSubmittedWorkDone resolved": median(walls),
      "late by (wall − GPU)": median(walls.map((w, i) => w - gpus[i])),
    };
  } finally {
    profiler.destroy();
    out.release();
  }
}
