// Elementwise kernels over flat f32 arrays of p.n elements. Launched as a 2-D grid of
// 256-wide workgroups (x up to the per-dimension limit, then y), see lib/ops/elementwise.ts.
// Forward and backward of each activation sit together.

struct Params {
  n: u32,
  alpha: f32,
  beta: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
  return gid.x + gid.y * groups.x * 256u;
}

// out = alpha·x + beta·y
@compute @workgroup_size(256)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = flat_index(gid, groups);
  if (i < p.n) { out[i] = p.alpha * x[i] + p.beta * y[i]; }
}

// out = x ⊙ y
@compute @workgroup_size(256)
fn mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = flat_index(gid, groups);
  if (i < p.n) { out[i] = x[i] * y[i]; }
}

// out = alpha·x
@compute @workgroup_size(256)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = flat_index(gid, groups);
  if (i < p.n) { out[i] = p.alpha * x[i]; }
}

fn sigmoid(v: f32) -> f32 {
  return 1.0 / (1.0 + exp(-v));
}

// out = silu(x) = x·σ(x)
@compute @workgroup_size(256)
fn silu_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = flat_index(gid, groups);
  if (i < p.n) { out[i] = x[i] * sigmoid(x[i]); }
}

// out = dy · silu'(x) = dy · σ(x)·(1 + x·(1 − σ(x))), with y holding dy
@compute @workgroup_size(256)
fn silu_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = flat_index(gid, groups);
  if (i < p.n) {
    let s = sigmoid(x[i]);
    out[i] = y[i] * s * (1.0 + x[i] * (1.0 - s));
  }
}
