// SRMSNorm family over the last dimension of a [rows, d] tensor (lib/ops/srmsnorm/):
//   y = x · r (· g),          r = 1 / sqrt(mean(x²) + eps)          (simple RMSNorm, TNL)
//   y = (o · r) ⊙ act(u)                                              (TNL attention output gate)
// One WG-thread workgroup per row (WG = 256; the wrapper substitutes a smaller power of two for
// narrow rows); rows beyond the x limit of the grid continue in y.
// Backward of y = x·r with upstream gradient t (t = dy, or dy ⊙ g with a gain):
//   dx = r·t − r³·x·(Σ t·x)/d
// Forward saves r per row ([rows]) so the backward does not repeat the reduction.

struct Params {
  rows: u32,
  d: u32,
  eps: f32,
  accumulate: u32, // gain_reduce: 1 adds into dgain, 0 overwrites it
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>; // [rows, d] (o of the gated form)
@group(0) @binding(2) var<storage, read> dy: array<f32>; // [rows, d]
@group(0) @binding(3) var<storage, read> gain: array<f32>; // [d]
@group(0) @binding(4) var<storage, read> u: array<f32>; // [rows, d] gate input
@group(0) @binding(5) var<storage, read_write> y: array<f32>; // [rows, d] output (dx in backward)
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>; // [rows], written by forward
@group(0) @binding(7) var<storage, read> rstd_in: array<f32>; // [rows], read by backward
@group(0) @binding(8) var<storage, read_write> du: array<f32>; // [rows, d] gate gradient
@group(0) @binding(9) var<storage, read_write> partial: array<f32>; // [blocks, d]
@group(0) @binding(10) var<storage, read> partial_in: array<f32>; // [blocks, d]
@group(0) @binding(11) var<storage, read_write> dgain: array<f32>; // [d]

const WG: u32 = 256u; // threads per row: a power of two ≤ 256 (see lib/ops/srmsnorm/)
var<workgroup> red: array<f32, WG>;

// Gate activation, set per pipeline: 0 none (TNL), 1 sigmoid, 2 SiLU.
override GATE_ACT: u32 = 0u;

// Sum of v over the workgroup, in a fixed tree order (deterministic).
fn workgroup_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier(); // red is reused by the next call
  return total;
}

fn row_index(wg: vec3<u32>, groups: vec3<u32>) -> u32 {
  return wg.x + wg.y * groups.x;
}

// r of row `row`: 1 / sqrt(mean(x²) + eps).
fn row_rstd(base: u32, lid: u32) -> f32 {
  var ss = 0.0;
  for (var j = lid; j < p.d; j += WG) { ss += x[base + j] * x[base + j]; }
  return inverseSqrt(workgroup_sum(ss, lid) / f32(p.d) + p.eps);
}

fn act(v: f32) -> f32 {
  if (GATE_ACT == 1u) { return 1.0 / (1.0 + exp(-v)); }
  if (GATE_ACT == 2u) { return v / (1.0 + exp(-v)); }
  return v;
}

fn act_grad(v: f32) -> f32 {
  if (GATE_ACT == 1u) { let s = 1.0 / (1.0 + exp(-v)); return s * (1.0 - s); }
  if (GATE_ACT == 2u) { let s = 1.0 / (1.0 + exp(-v)); return s * (1.0 + v * (1.0 - s)); }
  return 1.0;
}

@compute @workgroup_size(WG)
fn fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
  let row = row_index(wg, groups);
  if (row >= p.rows) { return; }
  let base = row * p.d;
  let r = row_rstd(base, lid);
  for (var j = lid; j < p.d; j += WG) { y[base + j] = x[base + j] * r; }
  if (lid == 0u) { rstd[row] = r; }
}

@compute @workgroup_size(WG)
fn fwd_gain(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let row = row_index(wg, groups);
  if (row >= p.rows) { return; }
  let base = row * p.d;
  let r = row_rstd(base, lid);
  for (var j = lid; j < p.d; j += WG) { y[base + j] = x[base + j] * r * gain[j]; }
  if (lid == 0u) { rstd[row] = r; }
}

// dx = r·t − r³·x·(Σ t·x)/d with t = dy. Writes dx into y.
@compute @workgroup_size(WG)
fn bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
  let row = row_index(wg, groups);
  if (row >= p.rows) { return; }
  let base = row * p.d;
  let r = rstd_in[row];
  var tx = 0.0;
  for (var j = lid; j < p.d; j += WG) { tx += dy[base + j] * x[base + j]; }
  let c = r * r * r * workgroup_sum(tx, lid) / f32(p.d);
  for (var j = lid; j < p.d; j += WG) { y[base + j] = r * dy[base + j] - c * x[base + j]; }
}

// The same with t = dy ⊙ gain.
@compute @workgroup_size(WG)
fn bwd_gain(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let row = row_index(wg, groups);
  if (row >= p.rows) { return; }
  let base = row * p.d;
  let r = rstd_in[row];
  var tx = 0.0;
  for (var j = lid; j < p.d; j += WG) { tx += dy[base + j] * gain[j] * x[base + j]; }
  let c = r * r * r * workgroup_sum(tx, lid) / f32(p.d);
  for (var j = lid; j < p.d; j += WG) {
    y[base + j] = r * dy[base + j] * gain[j] - c * x[base + j];
  }
}

// Gated form: y = (o·r) ⊙ act(u), o in x.
@compute @workgroup_size(WG)
fn gated_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let row = row_index(wg, groups);
  if (row >= p.rows) { return; }
  let base = row * p.d;
  let r = row_rstd(base, lid);
  for (var j = lid; j < p.d; j += WG) { y[base + j] = x[base + j] * r * act(u[base + j]); }
  if (lid == 0u) { rstd[row] = r; }
}

// du = dy ⊙ (o·r) ⊙ act'(u); do = SRMSNorm backward of t = dy ⊙ act(u). do goes into y.
@compute @workgroup_size(WG)
fn gated_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let row = row_index(wg, groups);
  if (row >= p.rows) { return; }
  let base = row * p.d;
  let r = rstd_in[row];
  var tx = 0.0;
  for (var j = lid; j < p.d; j += WG) {
    let o = x[base + j];
    let g = dy[base + j];
    let uj = u[base + j];
    du[base + j] = g * o * r * act_grad(uj);
    tx += g * act(uj) * o;
  }
  let c = r * r * r * workgroup_sum(tx, lid) / f32(p.d);
  for (var j = lid; j < p.d; j += WG) {
    y[base + j] = r * dy[base + j] * act(u[base + j]) - c * x[base + j];
  }
}

// Gain gradient, stage 1: partial[b, j] = Σ over rows b, b+B, … of dy·x·r (B = row blocks =
// groups.y). One thread per column j; a fixed row order per block keeps it deterministic.
@compute @workgroup_size(256)
fn gain_partial(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) groups: vec3<u32>) {
  let j = gid.x;
  if (j >= p.d) { return; }
  var s = 0.0;
  for (var row = gid.y; row < p.rows; row += groups.y) {
    s += dy[row * p.d + j] * x[row * p.d + j] * rstd_in[row];
  }
  partial[gid.y * p.d + j] = s;
}

// Stage 2: dgain[j] (+)= Σ_b partial[b, j], blocks in order; p.rows holds the block count.
@compute @workgroup_size(256)
fn gain_reduce(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  if (j >= p.d) { return; }
  var s = 0.0;
  for (var b = 0u; b < p.rows; b++) { s += partial_in[b * p.d + j]; }
  if (p.accumulate == 1u) { s += dgain[j]; }
  dgain[j] = s;
}
