/**
 * Optimizer kernels on the GPU (`shaders/adamw.wgsl`): the global gradient norm over many
 * tensors with its clip scale, computed deterministically and kept on the GPU, and the AdamW
 * update of one tensor, which reads that scale (no readback in the training step).
 *
 * Which tensors get weight decay is the caller's choice (the rule here: matrices yes, gains
 * and biases no); pass `weightDecay: 0` for the latter.
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import { linearWorkgroups } from "../../gpu/commands.ts";
import { shaderSource } from "../../gpu/shader_source.ts";
import { emptyTensor, type Tensor, uploadTensor } from "../../gpu/tensor.ts";
import { requireDistinct, requireShape } from "../_check.ts";

/** Workgroups per tensor in the first stage of the norm (must match NG in the shader). */
const NORM_GROUPS = 256;

function kernel(gpu: Gpu, entryPoint: "sumsq_partial" | "clip_finalize" | "adamw") {
  return gpu.kernels.get({ key: "adamw", code: () => shaderSource("adamw.wgsl"), entryPoint });
}

/**
 * `[norm, scale]` (f32 `[2]`) of the gradients taken together: norm = sqrt(Σ g²), scale =
 * min(1, maxNorm / (norm + 1e-6)), or 1 when `maxNorm` is 0 or absent (no clipping).
 */
export async function gradNormClip(
  gpu: Gpu,
  grads: readonly Tensor[],
  options: { maxNorm?: number } = {},
): Promise<Tensor> {
  const maxNorm = options.maxNorm ?? 0;
  if (!(maxNorm >= 0)) {
    throw new Error(`gradNormClip: maxNorm ${maxNorm} must be ≥ 0 (0: no clipping)`);
  }
  const partials = emptyTensor(gpu, [Math.max(1, grads.length) * NORM_GROUPS]);
  const partial = await kernel(gpu, "sumsq_partial");
  grads.forEach((grad, slot) => {
    if (grad.dtype !== "f32") {
      throw new Error(`gradNormClip: gradient ${slot} is ${grad.dtype}, expected f32`);
    }
    gpu.commands.dispatch(partial, {
      bindings: { np: { n: grad.size, slot, max_norm: maxNorm }, grad, partials },
      workgroups: [NORM_GROUPS],
    });
  });
  const clip = emptyTensor(gpu, [2]);
  gpu.commands.dispatch(await kernel(gpu, "clip_finalize"), {
    bindings: {
      np: { n: grads.length * NORM_GROUPS, slot: 0, max_norm: maxNorm },
      partials_in: partials,
      clip,
    },
    workgroups: [1],
  });
  partials.release();
  return clip;
}

const noClip = new WeakMap<Gpu, Tensor>();

/** Hyperparameters of one AdamW step. */
export interface AdamwStepOptions {
  /** Learning rate of this step. */
  lr: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.95 (common for LM pretraining; PyTorch's default is 0.999). */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay; default 0. */
  weightDecay?: number;
  /** 1-based step number, for bias correction. */
  step: number;
}

/**
 * One AdamW update of `param` in place, with moments `m`, `v` (same shape, updated in place).
 * `clip` is {@linkcode gradNormClip}'s result; its scale multiplies the gradient.
 */
export async function adamwStep(
  gpu: Gpu,
  state: { param: Tensor; grad: Tensor; m: Tensor; v: Tensor; clip?: Tensor },
  options: AdamwStepOptions,
): Promise<void> {
  const op = "adamwStep";
  const { param, grad, m, v } = state;
  for (const [name, t] of [["grad", grad], ["m", m], ["v", v]] as const) {
    requireShape(op, name, t, param.shape);
  }
  const beta1 = options.beta1 ?? 0.9, beta2 = options.beta2 ?? 0.95;
  const rules: [boolean, string][] = [
    [
      Number.isInteger(options.step) && options.step >= 1,
      `step ${options.step} must be an integer ≥ 1`,
    ],
    [options.lr >= 0, `lr ${options.lr} must be ≥ 0`],
    [beta1 >= 0 && beta1 < 1, `beta1 ${beta1} must be in [0, 1)`],
    [beta2 >= 0 && beta2 < 1, `beta2 ${beta2} must be in [0, 1)`],
  ];
  for (const [ok, rule] of rules) if (!ok) throw new Error(`${op}: ${rule}`);
  let clip = state.clip;
  if (!clip) {
    clip = noClip.get(gpu) ?? uploadTensor(gpu, [0, 1], [2]);
    noClip.set(gpu, clip);
  }
  requireShape(op, "clip", clip, [2]);
  requireDistinct(op, { param, grad, m, v, clip });
  gpu.commands.dispatch(await kernel(gpu, "adamw"), {
    bindings: {
      ap: {
        n: param.size,
        lr: options.lr,
        beta1,
        beta2,
        eps: options.eps ?? 1e-8,
        weight_decay: options.weightDecay ?? 0,
        bc1: 1 - beta1 ** options.step,
        bc2: 1 - beta2 ** options.step,
      },
      grad,
      clip_in: clip,
      param,
      m,
      v,
    },
    workgroups: linearWorkgroups(param.size, 256, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
}
