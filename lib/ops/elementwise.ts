/**
 * Elementwise ops over whole tensors (`shaders/elementwise.wgsl`): scaled add, multiply,
 * scale, and SiLU forward/backward.
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { linearWorkgroups } from "../gpu/commands.ts";
import { shaderSource } from "../gpu/shader_source.ts";
import { emptyTensor, type Tensor } from "../gpu/tensor.ts";
import { describeShape, requireDistinct, requireDType } from "./_check.ts";

/** Entry points of `shaders/elementwise.wgsl`. */
type Entry = "add" | "mul" | "scale" | "silu_fwd" | "silu_bwd";

/** Options shared by the elementwise ops. */
export interface ElementwiseOptions {
  /** Write here instead of a new tensor (not an input: WebGPU forbids read and write views of one buffer in a dispatch). */
  out?: Tensor;
}

function sameSize(name: string, a: Tensor, b: Tensor): void {
  if (a.size !== b.size) {
    throw new Error(
      `${name}: sizes differ, ${describeShape(a.shape)} vs ${describeShape(b.shape)}`,
    );
  }
}

async function run(
  gpu: Gpu,
  entry: Entry,
  inputs: { x: Tensor; y?: Tensor; alpha?: number; beta?: number },
  options: ElementwiseOptions,
): Promise<Tensor> {
  const { x } = inputs;
  requireDType(entry, "x", x);
  if (inputs.y) sameSize(entry, x, inputs.y);
  const out = options.out ?? emptyTensor(gpu, x.shape);
  sameSize(entry, x, out);
  // inputs may share a buffer (both read-only); out may not share one with either
  requireDistinct(entry, { x, out });
  if (inputs.y) requireDistinct(entry, { y: inputs.y, out });
  const kernel = await gpu.kernels.get({
    key: "elementwise",
    code: () => shaderSource("elementwise.wgsl"),
    entryPoint: entry,
  });
  const bindings: Record<string, Tensor | Record<string, number>> = {
    p: { n: x.size, alpha: inputs.alpha ?? 1, beta: inputs.beta ?? 1 },
    x,
    out,
  };
  if (kernel.bindings.has("y")) bindings.y = inputs.y ?? x;
  gpu.commands.dispatch(kernel, {
    bindings,
    workgroups: linearWorkgroups(x.size, 256, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return out;
}

/** `alpha·x + beta·y`. */
export function add(
  gpu: Gpu,
  x: Tensor,
  y: Tensor,
  options: ElementwiseOptions & { alpha?: number; beta?: number } = {},
): Promise<Tensor> {
  return run(gpu, "add", { x, y, alpha: options.alpha, beta: options.beta }, options);
}

/** `x ⊙ y`. */
export function mul(
  gpu: Gpu,
  x: Tensor,
  y: Tensor,
  options: ElementwiseOptions = {},
): Promise<Tensor> {
  return run(gpu, "mul", { x, y }, options);
}

/** `alpha·x`. */
export function scale(
  gpu: Gpu,
  x: Tensor,
  options: ElementwiseOptions & { alpha: number },
): Promise<Tensor> {
  return run(gpu, "scale", { x, alpha: options.alpha }, options);
}

/** `silu(x) = x·σ(x)`. */
export function siluForward(
  gpu: Gpu,
  x: Tensor,
  options: ElementwiseOptions = {},
): Promise<Tensor> {
  return run(gpu, "silu_fwd", { x }, options);
}

/** Gradient of {@linkcode siluForward}: `dy · silu'(x)`. */
export function siluBackward(
  gpu: Gpu,
  x: Tensor,
  dy: Tensor,
  options: ElementwiseOptions = {},
): Promise<Tensor> {
  return run(gpu, "silu_bwd", { x, y: dy }, options);
}
