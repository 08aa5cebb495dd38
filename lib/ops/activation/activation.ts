/**
 * Pointwise ops of the model blocks (`shaders/activation.wgsl`), next to the basics in
 * `lib/ops/elementwise.ts` (add, mul, scale, SiLU):
 * - feature maps φ for q and k: `"silu"` (TNL) or `"elu1"` = elu + 1 (Linear Transformer,
 *   positive), forward and backward;
 * - the simple GLU's backward (its forward `a ⊙ b` is `mul`);
 * - `fill` (e.g. zeroing a gradient before scatter-adds).
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import { linearWorkgroups } from "../../gpu/commands.ts";
import { shaderSource } from "../../gpu/shader_source.ts";
import { emptyTensor, type Tensor } from "../../gpu/tensor.ts";
import { siluBackward, siluForward } from "../elementwise.ts";
import { requireDistinct, requireShape } from "../_check.ts";

/** Feature map applied to q and k. */
export type FeatureMap = "silu" | "elu1";

type Entry = "elu1_fwd" | "elu1_bwd" | "glu_bwd" | "fill";

async function launch(
  gpu: Gpu,
  entry: Entry,
  n: number,
  bindings: Record<string, Tensor | Record<string, number>>,
): Promise<void> {
  const kernel = await gpu.kernels.get({
    key: "activation",
    code: () => shaderSource("activation.wgsl"),
    entryPoint: entry,
  });
  gpu.commands.dispatch(kernel, {
    bindings,
    workgroups: linearWorkgroups(n, 256, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
}

function checkMap(map: string): asserts map is FeatureMap {
  if (map !== "silu" && map !== "elu1") {
    throw new Error(`Unknown feature map "${map}": must be "silu" or "elu1"`);
  }
}

/** φ(x) for the chosen feature map. */
export async function featureMapForward(
  gpu: Gpu,
  x: Tensor,
  options: { map: FeatureMap; out?: Tensor },
): Promise<Tensor> {
  checkMap(options.map);
  if (options.map === "silu") return await siluForward(gpu, x, { out: options.out });
  const op = "featureMapForward";
  const out = options.out ?? emptyTensor(gpu, x.shape);
  requireShape(op, "out", out, x.shape);
  requireDistinct(op, { x, out });
  await launch(gpu, "elu1_fwd", x.size, { p: { n: x.size, value: 0 }, x, out });
  return out;
}

/** dy · φ'(x) for the chosen feature map. */
export async function featureMapBackward(
  gpu: Gpu,
  saved: { x: Tensor; dy: Tensor },
  options: { map: FeatureMap; out?: Tensor },
): Promise<Tensor> {
  checkMap(options.map);
  const { x, dy } = saved;
  if (options.map === "silu") return await siluBackward(gpu, x, dy, { out: options.out });
  const op = "featureMapBackward";
  requireShape(op, "dy", dy, x.shape);
  const out = options.out ?? emptyTensor(gpu, x.shape);
  requireShape(op, "out", out, x.shape);
  requireDistinct(op, { x, dy, out });
  await launch(gpu, "elu1_bwd", x.size, { p: { n: x.size, value: 0 }, x, dy, out });
  return out;
}

/** Gradients of the simple GLU `y = a ⊙ b`: da = dy ⊙ b, db = dy ⊙ a, in one pass. */
export async function gluBackward(
  gpu: Gpu,
  saved: { a: Tensor; b: Tensor; dy: Tensor },
  options: { da?: Tensor; db?: Tensor } = {},
): Promise<{ da: Tensor; db: Tensor }> {
  const op = "gluBackward";
  const { a, b, dy } = saved;
  requireShape(op, "b", b, a.shape);
  requireShape(op, "dy", dy, a.shape);
  const da = options.da ?? emptyTensor(gpu, a.shape);
  const db = options.db ?? emptyTensor(gpu, a.shape);
  requireShape(op, "da", da, a.shape);
  requireShape(op, "db", db, a.shape);
  requireDistinct(op, { a, b, dy, da, db });
  await launch(gpu, "glu_bwd", a.size, {
    p: { n: a.size, value: 0 },
    x: a,
    b,
    dy,
    out: da,
    out2: db,
  });
  return { da, db };
}

/** Sets every element of the f32 tensor `out` to `value`. */
export async function fill(gpu: Gpu, out: Tensor, options: { value: number }): Promise<Tensor> {
  requireShape("fill", "out", out, out.shape);
  await launch(gpu, "fill", out.size, { p: { n: out.size, value: options.value }, out });
  return out;
}
