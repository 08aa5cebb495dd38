/**
 * Float64 references of the SRMSNorm family (the definitions the GPU kernels are tested
 * against): `y = x·r (·g)` with `r = 1/sqrt(mean(x²) + eps)` over the last dimension, and the
 * gated form `y = (o·r) ⊙ act(u)` of TNL's attention output.
 * @module
 */

/** Gate activation of the normalized attention output. */
export type GateActivation = "none" | "sigmoid" | "silu";

/** Row layout and constants of a reference call. */
export interface RowDims {
  rows: number;
  d: number;
  eps: number;
}

function rstdOf(x: ArrayLike<number>, base: number, d: number, eps: number): number {
  let ss = 0;
  for (let j = 0; j < d; j++) ss += x[base + j] * x[base + j];
  return 1 / Math.sqrt(ss / d + eps);
}

/** `y = x·r (·gain)` per row, and `r` per row. */
export function srmsnormReference(
  x: ArrayLike<number>,
  dims: RowDims & { gain?: ArrayLike<number> },
): { y: Float64Array; rstd: Float64Array } {
  const { rows, d, eps, gain } = dims;
  const y = new Float64Array(rows * d), rstd = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    const r = rstd[i] = rstdOf(x, i * d, d, eps);
    for (let j = 0; j < d; j++) y[i * d + j] = x[i * d + j] * r * (gain ? gain[j] : 1);
  }
  return { y, rstd };
}

/** Gradients of {@linkcode srmsnormReference}: dx, and dgain when there is a gain. */
export function srmsnormBackwardReference(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  dims: RowDims & { gain?: ArrayLike<number> },
): { dx: Float64Array; dgain: Float64Array } {
  const { rows, d, eps, gain } = dims;
  const dx = new Float64Array(rows * d), dgain = new Float64Array(d);
  for (let i = 0; i < rows; i++) {
    const base = i * d, r = rstdOf(x, base, d, eps);
    let tx = 0;
    for (let j = 0; j < d; j++) tx += dy[base + j] * (gain ? gain[j] : 1) * x[base + j];
    for (let j = 0; j < d; j++) {
      const t = dy[base + j] * (gain ? gain[j] : 1);
      dx[base + j] = r * t - (r * r * r * x[base + j] * tx) / d;
      dgain[j] += dy[base + j] * x[base + j] * r;
    }
  }
  return { dx, dgain };
}

/** The gate activation and its derivative. */
export function gateActivation(
  act: GateActivation,
): [(v: number) => number, (v: number) => number] {
  const sig = (v: number) => 1 / (1 + Math.exp(-v));
  if (act === "sigmoid") return [sig, (v) => sig(v) * (1 - sig(v))];
  if (act === "silu") return [(v) => v * sig(v), (v) => sig(v) * (1 + v * (1 - sig(v)))];
  return [(v) => v, () => 1];
}

/** `y = (o·r) ⊙ act(u)` per row, and `r` per row. */
export function normGateReference(
  o: ArrayLike<number>,
  u: ArrayLike<number>,
  dims: RowDims & { act: GateActivation },
): { y: Float64Array; rstd: Float64Array } {
  const [f] = gateActivation(dims.act);
  const { y, rstd } = srmsnormReference(o, dims);
  for (let i = 0; i < y.length; i++) y[i] *= f(u[i]);
  return { y, rstd };
}

/** Gradients of {@linkcode normGateReference} with respect to o and u. */
export function normGateBackwardReference(
  o: ArrayLike<number>,
  u: ArrayLike<number>,
  dy: ArrayLike<number>,
  dims: RowDims & { act: GateActivation },
): { dO: Float64Array; dU: Float64Array } {
  const [f, df] = gateActivation(dims.act);
  const { y: n } = srmsnormReference(o, dims);
  const dU = Float64Array.from(n, (v, i) => dy[i] * v * df(u[i]));
  const dn = Float64Array.from(n, (_, i) => dy[i] * f(u[i]));
  return { dO: srmsnormBackwardReference(o, dn, dims).dx, dU };
}
