// Pointwise ops of the model blocks not covered by shaders/elementwise.wgsl, over flat f32
// arrays of p.n elements, launched like it (256-wide workgroups, x then y; lib/ops/activation/).
//   elu1: φ(x) = elu(x) + 1 (x + 1 for x > 0, exp(x) otherwise), the Linear Transformer's
//         positive feature map; φ'(x) = 1 for x > 0, exp(x) otherwise.
//   glu:  y = a ⊙ b (TNL's simple GLU, no activation); da = dy ⊙ b, db = dy ⊙ a.
//   fill: out = value.

struct Params {
  n: u32,
  value: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>; // input (a of the GLU)
@group(0) @binding(2) var<storage, read> dy: array<f32>; // upstream gradient
@group(0) @binding(3) var<storage, read> b: array<f32>; // second GLU input
@group(0) @binding(4) var<storage, read_write> out: array<f32>; // output (da of the GLU)
@group(0) @binding(5) var<storage, read_write> out2: array<f32>; // db of the GLU

fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
  return gid.x + gid.y * groups.x * 256u;
}

@compute @workgroup_size(256)
fn elu1_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = flat_index(gid, groups);
  if (i >= p.n) { return; }
  let v = x[i];
  out[i] = select(exp(v), v + 1.0, v > 0.0);
}

@compute @workgroup_size(256)
fn elu1_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = flat_index(gid, groups);
  if (i >= p.n) { return; }
  let v = x[i];
  out[i] = dy[i] * select(exp(v), 1.0, v > 0.0);
}

@compute @workgroup_size(256)
fn glu_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = flat_index(gid, groups);
  if (i >= p.n) { return; }
  let g = dy[i];
  out[i] = g * b[i];
  out2[i] = g * x[i];
}

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = flat_index(gid, groups);
  if (i < p.n) { out[i] = p.value; }
}
