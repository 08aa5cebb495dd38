/**
 * LASP for WebGPU: training linear-attention language models on very long sequences across
 * GPUs, from Deno. Fused WGSL linear-attention kernels run on any WebGPU implementation (Deno's
 * built-in one or Dawn); sequence-parallel ranks pass one small state per head in a ring.
 *
 * ```ts
 * import { downloadTensor, matmul, openDevice, uploadTensor } from "./mod.ts";
 * const gpu = await openDevice();
 * const a = uploadTensor(gpu, new Float32Array(6).fill(1), [2, 3]);
 * const b = uploadTensor(gpu, new Float32Array(12).fill(2), [3, 4]);
 * console.log(await downloadTensor(gpu, await matmul(gpu, a, b))); // 6 everywhere
 * ```
 * @module
 */
export {
  type Gpu,
  GPU_ENV,
  type GpuChoice,
  type GpuImplementation,
  NAN_FILL_ENV,
  openDevice,
  type OpenDeviceOptions,
  resolveGpuChoice,
} from "./lib/gpu/device.ts";
export {
  downloadTensor,
  downloadTensors,
  type DType,
  emptyTensor,
  type HostArray,
  shapeSize,
  Tensor,
  uploadTensor,
  writeTensor,
} from "./lib/gpu/tensor.ts";
export { BufferPool, type BufferPoolOptions } from "./lib/gpu/pool.ts";
export {
  type BindingValue,
  type Kernel,
  type KernelBinding,
  KernelCache,
  type KernelSpec,
  reflectEntry,
  type UniformValues,
} from "./lib/gpu/kernel.ts";
export { CommandQueue, type DispatchOptions } from "./lib/gpu/commands.ts";
export { GpuProfiler, type ProfileEntry } from "./lib/gpu/profiler.ts";
export { matmul, type MatmulOptions } from "./lib/ops/matmul.ts";
export {
  add,
  type ElementwiseOptions,
  mul,
  scale,
  siluBackward,
  siluForward,
} from "./lib/ops/elementwise.ts";
export { linearWorkgroups } from "./lib/gpu/commands.ts";
export { shaderSource } from "./lib/gpu/shader_source.ts";
export type { MatmulTile } from "./shaders/matmul.ts";
