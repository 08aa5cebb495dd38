/**
 * Token embedding on the GPU (`shaders/embedding.wgsl`): gather forward, and a deterministic
 * scatter-add backward without float atomics. The backward takes a plan built on the host from
 * the same token ids ({@linkcode embeddingScatterPlan}: a stable counting sort of positions by
 * id, O(tokens + vocab)); the batch's ids are on the host anyway (the data loader makes them),
 * and a fixed summation order makes gradients bitwise reproducible run to run.
 *
 * Cost of the backward: each distinct id's positions are summed sequentially by the threads of
 * one workgroup per 256 columns, so the most frequent token of the batch sets its length.
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import { linearWorkgroups } from "../../gpu/commands.ts";
import { shaderSource } from "../../gpu/shader_source.ts";
import { emptyTensor, type Tensor, uploadTensor } from "../../gpu/tensor.ts";
import { describeShape, requireDistinct, requireDType, requireShape } from "../_check.ts";
import { fill } from "../activation/activation.ts";

function kernel(gpu: Gpu, entryPoint: "gather" | "scatter_add") {
  return gpu.kernels.get({
    key: "embedding",
    code: () => shaderSource("embedding.wgsl"),
    entryPoint,
  });
}

/** Token positions grouped by id, uploaded for {@linkcode embeddingBackward}. */
export interface EmbeddingPlan {
  /** u32 `[order (n) | segment starts (segments + 1) | segment ids (segments)]`. */
  readonly tensor: Tensor;
  /** Number of token positions n. */
  readonly tokens: number;
  /** Number of distinct ids. */
  readonly segments: number;
  /** Vocabulary size the ids were checked against. */
  readonly vocab: number;
}

/** The plan's host layout (exported for tests). */
export function buildScatterPlan(ids: ArrayLike<number>, vocab: number): Uint32Array {
  const n = ids.length;
  const counts = new Uint32Array(vocab);
  for (let t = 0; t < n; t++) {
    const id = ids[t];
    if (!Number.isInteger(id) || id < 0 || id >= vocab) {
      throw new Error(`Token id ${id} at position ${t} is outside the vocabulary [0, ${vocab})`);
    }
    counts[id]++;
  }
  let segments = 0;
  for (let v = 0; v < vocab; v++) if (counts[v] > 0) segments++;
  const plan = new Uint32Array(n + 2 * segments + 1);
  const cursor = new Uint32Array(vocab); // next free slot in `order` for each id
  let s = 0, offset = 0;
  for (let v = 0; v < vocab; v++) {
    if (counts[v] === 0) continue;
    plan[n + s] = offset;
    plan[n + segments + 1 + s] = v;
    cursor[v] = offset;
    offset += counts[v];
    s++;
  }
  plan[n + segments] = offset;
  for (let t = 0; t < n; t++) plan[cursor[ids[t]]++] = t; // ascending t: stable
  return plan;
}

/** Builds and uploads the scatter plan of a batch's token ids. Release it with its tensor. */
export function embeddingScatterPlan(
  gpu: Gpu,
  ids: ArrayLike<number>,
  options: { vocab: number },
): EmbeddingPlan {
  const plan = buildScatterPlan(ids, options.vocab);
  const segments = (plan.length - ids.length - 1) / 2;
  return {
    tensor: uploadTensor(gpu, plan, [plan.length], "u32"),
    tokens: ids.length,
    segments,
    vocab: options.vocab,
  };
}

/** out `[...ids.shape, d]` = rows of weight `[vocab, d]` picked by ids (u32). */
export async function embeddingForward(
  gpu: Gpu,
  inputs: { weight: Tensor; ids: Tensor },
  options: { out?: Tensor } = {},
): Promise<Tensor> {
  const op = "embeddingForward";
  const { weight, ids } = inputs;
  requireDType(op, "weight", weight);
  requireDType(op, "ids", ids, "u32");
  if (weight.shape.length !== 2) {
    throw new Error(`${op}: weight must be [vocab, d], got ${describeShape(weight.shape)}`);
  }
  const [vocab, d] = weight.shape;
  const shape = [...ids.shape, d];
  const out = options.out ?? emptyTensor(gpu, shape);
  requireShape(op, "out", out, shape);
  requireDistinct(op, { weight, ids, out });
  gpu.commands.dispatch(await kernel(gpu, "gather"), {
    bindings: { p: { n: ids.size, d, vocab, segments: 0 }, ids, weight, out },
    workgroups: linearWorkgroups(ids.size * d, 256, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return out;
}

/** Options of {@linkcode embeddingBackward}. */
export interface EmbeddingBackwardOptions {
  /** Gradient of the weight `[vocab, d]`; default a new tensor. */
  dweight?: Tensor;
  /** Add into `dweight` (tied LM head, gradient accumulation) instead of overwriting it. */
  accumulate?: boolean;
}

/** dweight (+)= scatter-add of dy `[n, d]` rows by the plan's ids. */
export async function embeddingBackward(
  gpu: Gpu,
  inputs: { dy: Tensor; plan: EmbeddingPlan },
  options: EmbeddingBackwardOptions = {},
): Promise<Tensor> {
  const op = "embeddingBackward";
  const { dy, plan } = inputs;
  requireDType(op, "dy", dy);
  const d = dy.shape.at(-1) ?? 0;
  if (dy.size !== plan.tokens * d) {
    throw new Error(
      `${op}: dy ${describeShape(dy.shape)} does not hold ${plan.tokens} rows (the plan's tokens)`,
    );
  }
  if (options.accumulate && !options.dweight) {
    throw new Error(`${op}: accumulate needs a dweight tensor to add to`);
  }
  const dweight = options.dweight ?? emptyTensor(gpu, [plan.vocab, d]);
  requireShape(op, "dweight", dweight, [plan.vocab, d]);
  requireDistinct(op, { dy, plan: plan.tensor, dweight });
  if (!options.accumulate) await fill(gpu, dweight, { value: 0 });
  const max = gpu.limits.maxComputeWorkgroupsPerDimension;
  const [y, z] = linearWorkgroups(plan.segments, 1, max);
  gpu.commands.dispatch(await kernel(gpu, "scatter_add"), {
    bindings: {
      p: { n: plan.tokens, d, vocab: plan.vocab, segments: plan.segments },
      plan: plan.tensor,
      dy,
      dweight,
    },
    workgroups: [Math.ceil(d / 256), y, z],
  });
  return dweight;
}
