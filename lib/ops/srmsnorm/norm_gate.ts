/**
 * The normalized, gated output of TNL's lightning attention: `y = SRMSNorm(o) ⊙ act(u)`,
 * where u is the gate projection of the block input. TransNormerLLM's reference code applies
 * no activation to u (`output = u * norm(output)`), so `act` defaults to `"none"`; `"sigmoid"`
 * and `"silu"` give the other common gated-attention conventions. No gain (TNL's SRMSNorm has
 * none). Forward and backward are fused, one workgroup per row (`shaders/srmsnorm.wgsl`).
 * @module
 */
import type { Gpu } from "../../gpu/device.ts";
import { emptyTensor, type Tensor } from "../../gpu/tensor.ts";
import { requireDistinct, requireShape, rowsOf } from "../_check.ts";
import type { GateActivation } from "./reference.ts";
import { rowThreads, rowWorkgroups } from "../_rows.ts";
import { SRMSNORM_EPS, srmsnormKernel } from "./srmsnorm.ts";

export type { GateActivation } from "./reference.ts";

const ACT_CODE: Record<GateActivation, number> = { none: 0, sigmoid: 1, silu: 2 };

function actCode(act: GateActivation | undefined): number {
  const code = ACT_CODE[act ?? "none"];
  if (code === undefined) {
    throw new Error(`Unknown gate activation "${act}": must be "none", "sigmoid" or "silu"`);
  }
  return code;
}

/** Options of the gated norm. */
export interface NormGateOptions {
  /** Activation of the gate u. Default `"none"` (TNL). */
  act?: GateActivation;
  /** Default {@linkcode SRMSNORM_EPS}. */
  eps?: number;
}

/** `y = (o·r) ⊙ act(u)` over rows of o `[..., d]`; returns y and r `[rows]`. */
export async function normGateForward(
  gpu: Gpu,
  inputs: { o: Tensor; u: Tensor },
  options: NormGateOptions & { out?: Tensor } = {},
): Promise<{ y: Tensor; rstd: Tensor }> {
  const op = "normGateForward";
  const { o, u } = inputs;
  const [rows, d] = rowsOf(op, "o", o);
  requireShape(op, "u", u, o.shape);
  const y = options.out ?? emptyTensor(gpu, o.shape);
  requireShape(op, "out", y, o.shape);
  requireDistinct(op, { o, u, out: y });
  const rstd = emptyTensor(gpu, [rows]);
  const kernel = await srmsnormKernel(gpu, "gated_fwd", {
    wg: rowThreads(d),
    constants: { GATE_ACT: actCode(options.act) },
  });
  gpu.commands.dispatch(kernel, {
    bindings: { p: { rows, d, eps: options.eps ?? SRMSNORM_EPS, accumulate: 0 }, x: o, u, y, rstd },
    workgroups: rowWorkgroups(gpu, rows),
  });
  return { y, rstd };
}

/** Gradients of {@linkcode normGateForward} with respect to o and u. */
export async function normGateBackward(
  gpu: Gpu,
  saved: { o: Tensor; u: Tensor; rstd: Tensor; dy: Tensor },
  options: NormGateOptions & { dO?: Tensor; dU?: Tensor } = {},
): Promise<{ dO: Tensor; dU: Tensor }> {
  const op = "normGateBackward";
  const { o, u, rstd, dy } = saved;
  const [rows, d] = rowsOf(op, "o", o);
  for (const [name, t] of [["u", u], ["dy", dy]] as const) requireShape(op, name, t, o.shape);
  requireShape(op, "rstd", rstd, [rows]);
  const dO = options.dO ?? emptyTensor(gpu, o.shape);
  const dU = options.dU ?? emptyTensor(gpu, o.shape);
  requireShape(op, "dO", dO, o.shape);
  requireShape(op, "dU", dU, o.shape);
  requireDistinct(op, { o, u, rstd, dy, dO, dU });
  const kernel = await srmsnormKernel(gpu, "gated_bwd", {
    wg: rowThreads(d),
    constants: { GATE_ACT: actCode(options.act) },
  });
  gpu.commands.dispatch(kernel, {
    bindings: { p: { rows, d, eps: 0, accumulate: 0 }, x: o, u, dy, rstd_in: rstd, y: dO, du: dU },
    workgroups: rowWorkgroups(gpu, rows),
  });
  return { dO, dU };
}
