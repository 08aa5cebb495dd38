// Optimizer kernels (lib/ops/adamw/): global gradient norm with clipping, and the AdamW step.
//
// Global norm over many tensors, deterministically (no atomics): for each tensor, sumsq_partial
// runs exactly NG = 256 workgroups that write their partial sums of squares to
// partials[slot·NG + group]; clip_finalize (one workgroup) sums all partials in a fixed tree
// and writes clip = [norm, scale], scale = min(1, max_norm / (norm + 1e-6)) (1 when
// max_norm ≤ 0). The AdamW step reads the scale from the GPU: no readback per step.
//
// AdamW (Loshchilov & Hutter; PyTorch's torch.optim.AdamW), with g = grad · scale:
//   m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²
//   θ ← θ·(1 − lr·wd) − lr · (m / bc1) / (sqrt(v / bc2) + eps),   bc_i = 1 − β_i^t

struct NormParams {
  n: u32, // elements of this tensor (sumsq_partial) or partials in total (clip_finalize)
  slot: u32,
  max_norm: f32,
}
struct AdamParams {
  n: u32,
  lr: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  weight_decay: f32,
  bc1: f32,
  bc2: f32,
}
@group(0) @binding(0) var<uniform> np: NormParams;
@group(0) @binding(1) var<uniform> ap: AdamParams;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>; // [slots · NG]
@group(0) @binding(4) var<storage, read> partials_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> clip: array<f32>; // [norm, scale]
@group(0) @binding(6) var<storage, read> clip_in: array<f32>; // [norm, scale]
@group(0) @binding(7) var<storage, read_write> param: array<f32>;
@group(0) @binding(8) var<storage, read_write> m: array<f32>;
@group(0) @binding(9) var<storage, read_write> v: array<f32>;

const WG: u32 = 256u;
const NG: u32 = 256u;
var<workgroup> red: array<f32, 256>;

fn workgroup_sum(x: f32, lid: u32) -> f32 {
  red[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  return red[0];
}

@compute @workgroup_size(256)
fn sumsq_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = wg.x * WG + lid; i < np.n; i += NG * WG) { s += grad[i] * grad[i]; }
  let total = workgroup_sum(s, lid);
  if (lid == 0u) { partials[np.slot * NG + wg.x] = total; }
}

@compute @workgroup_size(256)
fn clip_finalize(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < np.n; i += WG) { s += partials_in[i]; }
  let norm = sqrt(workgroup_sum(s, lid));
  if (lid == 0u) {
    clip[0] = norm;
    clip[1] = select(1.0, min(1.0, np.max_norm / (norm + 1e-6)), np.max_norm > 0.0);
  }
}

@compute @workgroup_size(256)
fn adamw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= ap.n) { return; }
  let g = grad[i] * clip_in[1];
  let mi = ap.beta1 * m[i] + (1.0 - ap.beta1) * g;
  let vi = ap.beta2 * v[i] + (1.0 - ap.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  let update = (mi / ap.bc1) / (sqrt(vi / ap.bc2) + ap.eps);
  param[i] = param[i] * (1.0 - ap.lr * ap.weight_decay) - ap.lr * update;
}
