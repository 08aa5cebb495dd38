// Moving activations between the token layout of the model, [B, n, D] (D = H·hd, head h in
// columns h·hd … h·hd + hd − 1), and the head layout of linear attention, [B, H, n, hd]
// (lib/ops/heads/). One thread per element, 256-wide workgroups, x then y.
//   split_qkvu: the fused projection [B, n, 4D] = [q | k | v | u] → q, k, v [B, H, n, hd], u [B, n, D]
//   merge_qkvu: its backward, dq, dk, dv [B, H, n, hd], du [B, n, D] → [B, n, 4D]
// Both take `fused` as rows row0 … row0 + rows − 1 of the B·n token rows, so a projection too
// large for one binding is split and merged in row chunks.
//   heads_to_tokens: [B, H, n, hd] → [B, n, D]   tokens_to_heads: the inverse (and backward)

struct Params {
  batch: u32,
  len: u32,
  heads: u32,
  hd: u32,
  row0: u32, // first token row held by `fused` (split/merge only)
  rows: u32, // token rows held by `fused` (split/merge only)
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> fused: array<f32>; // [rows, 4D] of [B·n, 4D]
@group(0) @binding(2) var<storage, read_write> q: array<f32>; // [B, H, n, hd]
@group(0) @binding(3) var<storage, read_write> k: array<f32>; // [B, H, n, hd]
@group(0) @binding(4) var<storage, read_write> v: array<f32>; // [B, H, n, hd]
@group(0) @binding(5) var<storage, read_write> u: array<f32>; // [B, n, D]
@group(0) @binding(6) var<storage, read_write> tokens: array<f32>; // [B, n, D]
@group(0) @binding(7) var<storage, read_write> heads: array<f32>; // [B, H, n, hd]

fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
  return gid.x + gid.y * groups.x * 256u;
}

// Index into [B, H, n, hd] of row r = b·n + t of the token layout, column j of D.
fn head_index(r: u32, j: u32) -> u32 {
  let b = r / p.len;
  let t = r - b * p.len;
  let h = j / p.hd;
  let e = j - h * p.hd;
  return ((b * p.heads + h) * p.len + t) * p.hd + e;
}

// Element i of the fused chunk: token row (global), part (0 q, 1 k, 2 v, 3 u), column of D.
struct FusedCoord {
  row: u32,
  part: u32,
  col: u32,
}

fn fused_coord(i: u32) -> FusedCoord {
  let d = p.heads * p.hd;
  let local = i / (4u * d);
  let c = i - local * 4u * d;
  let part = c / d;
  return FusedCoord(p.row0 + local, part, c - part * d);
}

@compute @workgroup_size(256)
fn split_qkvu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = flat_index(gid, groups);
  let d = p.heads * p.hd;
  if (i >= p.rows * 4u * d) { return; }
  let f = fused_coord(i);
  let r = f.row;
  let part = f.part;
  let j = f.col;
  let x = fused[i];
  if (part == 0u) {
    q[head_index(r, j)] = x;
  } else if (part == 1u) {
    k[head_index(r, j)] = x;
  } else if (part == 2u) {
    v[head_index(r, j)] = x;
  } else {
    u[r * d + j] = x;
  }
}

@compute @workgroup_size(256)
fn merge_qkvu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = flat_index(gid, groups);
  let d = p.heads * p.hd;
  if (i >= p.rows * 4u * d) { return; }
  let f = fused_coord(i);
  let r = f.row;
  let part = f.part;
  let j = f.col;
  var x: f32;
  if (part == 0u) {
    x = q[head_index(r, j)];
  } else if (part == 1u) {
    x = k[head_index(r, j)];
  } else if (part == 2u) {
    x = v[head_index(r, j)];
  } else {
    x = u[r * d + j];
  }
  fused[i] = x;
}

@compute @workgroup_size(256)
fn heads_to_tokens(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = flat_index(gid, groups);
  let d = p.heads * p.hd;
  if (i >= p.batch * p.len * d) { return; }
  let r = i / d;
  tokens[i] = heads[head_index(r, i - r * d)];
}

@compute @workgroup_size(256)
fn tokens_to_heads(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = flat_index(gid, groups);
  let d = p.heads * p.hd;
  if (i >= p.batch * p.len * d) { return; }
  let r = i / d;
  heads[head_index(r, i - r * d)] = tokens[i];
}
