// Softmax cross-entropy over rows of logits [rows, vocab] (lib/ops/cross_entropy/).
//   fwd:   lse = log Σ_j exp(x_j) (max-shifted), loss = lse − x[target]; one workgroup per row,
//          each thread keeps a running (max, sum) pair that the workgroup merges in a fixed tree.
//          Rows whose target is ignore_index get loss 0; a target outside [0, vocab) gets NaN.
//   mean:  one workgroup: stats = [Σ loss / count, count, Σ loss] over rows not ignored.
//   bwd:   dlogits = scale / count · (softmax(x) − onehot(target)); ignored rows get 0.
//          bwd_inplace overwrites the logits with their gradient (saves a [rows, vocab] buffer).

struct Params {
  rows: u32,
  vocab: u32,
  ignore_index: i32,
  scale: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>; // [rows, vocab]
@group(0) @binding(2) var<storage, read> targets: array<i32>; // [rows] (u32 ids read as i32)
@group(0) @binding(3) var<storage, read_write> losses: array<f32>; // [rows]
@group(0) @binding(4) var<storage, read_write> lse: array<f32>; // [rows]
@group(0) @binding(5) var<storage, read> losses_in: array<f32>; // [rows]
@group(0) @binding(6) var<storage, read_write> stats: array<f32>; // [3]
@group(0) @binding(7) var<storage, read> lse_in: array<f32>; // [rows]
@group(0) @binding(8) var<storage, read> stats_in: array<f32>; // [3]
@group(0) @binding(9) var<storage, read_write> dlogits: array<f32>; // [rows, vocab]
@group(0) @binding(10) var<storage, read_write> grad: array<f32>; // logits → dlogits in place
// A NaN from a variable: Tint (Dawn) rejects a constant expression that folds to NaN.
var<private> quiet_nan_bits: u32 = 0x7fc00000u;

const WG: u32 = 256u; // threads per row: a power of two ≤ 256 (lib/ops/_rows.ts)
const NEG_BIG: f32 = -3.4028234e38; // start of a running max (−inf would give inf − inf); ≤ f32 max, which Tint checks strictly
var<workgroup> red_a: array<f32, WG>;
var<workgroup> red_b: array<f32, WG>;

fn row_index(wg: vec3<u32>, groups: vec3<u32>) -> u32 {
  return wg.x + wg.y * groups.x;
}

fn ignored(t: i32) -> bool {
  return t == p.ignore_index;
}

@compute @workgroup_size(WG)
fn fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
  let row = row_index(wg, groups);
  if (row >= p.rows) { return; }
  let base = row * p.vocab;
  var m = NEG_BIG;
  var s = 0.0;
  for (var j = lid; j < p.vocab; j += WG) {
    let v = logits[base + j];
    if (v > m) { s = s * exp(m - v); m = v; }
    s += exp(v - m);
  }
  red_a[lid] = m;
  red_b[lid] = s;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) {
      let m1 = red_a[lid];
      let m2 = red_a[lid + k];
      let mm = max(m1, m2);
      red_b[lid] = red_b[lid] * exp(m1 - mm) + red_b[lid + k] * exp(m2 - mm);
      red_a[lid] = mm;
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let l = red_a[0] + log(red_b[0]);
    lse[row] = l;
    let t = targets[row];
    if (ignored(t)) {
      losses[row] = 0.0;
    } else if (t < 0 || u32(t) >= p.vocab) {
      losses[row] = bitcast<f32>(quiet_nan_bits); // NaN: target outside the vocabulary
    } else {
      losses[row] = l - logits[base + u32(t)];
    }
  }
}

@compute @workgroup_size(WG)
fn mean(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  var c = 0.0;
  for (var i = lid; i < p.rows; i += WG) {
    if (!ignored(targets[i])) { s += losses_in[i]; c += 1.0; }
  }
  red_a[lid] = s;
  red_b[lid] = c;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) { red_a[lid] += red_a[lid + k]; red_b[lid] += red_b[lid + k]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let count = red_b[0];
    stats[0] = select(0.0, red_a[0] / count, count > 0.0);
    stats[1] = count;
    stats[2] = red_a[0];
  }
}

// Gradient of one logit: coef·(exp(x − lse) − [j = target]), coef = 0 for ignored rows.
fn grad_of(x: f32, j: u32, t: i32, l: f32, coef: f32) -> f32 {
  let onehot = select(0.0, 1.0, i32(j) == t);
  return coef * (exp(x - l) - onehot);
}

fn row_coef(t: i32) -> f32 {
  let count = stats_in[1];
  if (ignored(t) || count == 0.0) { return 0.0; }
  return p.scale / count;
}

@compute @workgroup_size(WG)
fn bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
  let row = row_index(wg, groups);
  if (row >= p.rows) { return; }
  let base = row * p.vocab;
  let t = targets[row];
  let coef = row_coef(t);
  let l = lse_in[row];
  for (var j = lid; j < p.vocab; j += WG) {
    dlogits[base + j] = grad_of(logits[base + j], j, t, l, coef);
  }
}

@compute @workgroup_size(WG)
fn bwd_inplace(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let row = row_index(wg, groups);
  if (row >= p.rows) { return; }
  let base = row * p.vocab;
  let t = targets[row];
  let coef = row_coef(t);
  let l = lse_in[row];
  for (var j = lid; j < p.vocab; j += WG) {
    grad[base + j] = grad_of(grad[base + j], j, t, l, coef);
  }
}
