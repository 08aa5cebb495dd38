// Token embedding (lib/ops/embedding/): gather forward, deterministic scatter-add backward.
//
// Forward: out[t, c] = weight[ids[t], c]; an id ≥ vocab yields NaN (visible in the loss).
// Backward without float atomics: the host sorts token positions by id (a counting sort,
// stable, so positions stay in order) into a plan
//   plan = [order (n) | segment starts (segments + 1) | segment ids (segments)],
// and one workgroup handles one (segment, 256-column block): each thread sums dy over its
// segment's positions in order and adds the sum to dweight[id, c]. The summation order is
// fixed by the plan, so the result is bitwise reproducible; rows of ids that do not occur
// are left untouched (the wrapper zero-fills when not accumulating).

struct Params {
  n: u32, // tokens
  d: u32, // embedding width
  vocab: u32,
  segments: u32, // distinct ids in the plan
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>; // [n]
@group(0) @binding(2) var<storage, read> weight: array<f32>; // [vocab, d]
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // [n, d]
@group(0) @binding(4) var<storage, read> plan: array<u32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>; // [n, d]
@group(0) @binding(6) var<storage, read_write> dweight: array<f32>; // [vocab, d]
// A NaN from a variable: Tint (Dawn) rejects a constant expression that folds to NaN.
var<private> quiet_nan_bits: u32 = 0x7fc00000u;

@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * 256u;
  if (i >= p.n * p.d) { return; }
  let t = i / p.d;
  let c = i - t * p.d;
  let id = ids[t];
  if (id < p.vocab) {
    out[i] = weight[id * p.d + c];
  } else {
    out[i] = bitcast<f32>(quiet_nan_bits); // NaN: an id outside the vocabulary
  }
}

@compute @workgroup_size(256)
fn scatter_add(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
               @builtin(num_workgroups) groups: vec3<u32>) {
  let seg = wg.y + wg.z * groups.y;
  let c = wg.x * 256u + lid;
  if (seg >= p.segments || c >= p.d) { return; }
  let start = plan[p.n + seg];
  let end = plan[p.n + seg + 1u];
  let id = plan[p.n + p.segments + 1u + seg];
  var s = 0.0;
  for (var k = start; k < end; k++) { s += dy[plan[k] * p.d + c]; }
  dweight[id * p.d + c] += s;
}
