// Row operations on optimizer state (any float32 tensor seen as rows of `row_len`).
//   gather     : dst row i = src row idx[i] (idx[i] >= src_rows gives a zero row); count = dst elements.
//   zero_rows  : dst row idx[k] = 0 for every k; count = len(idx) * row_len.
//   zero_mask  : dst row r = 0 where idx[r] != 0 (idx is a u32 mask [rows]); count = dst elements.

#include "common.wgsl"

struct RowParams {
    count: u32,
    row_len: u32,
    src_rows: u32,
    dst_rows: u32,
}

@group(0) @binding(0) var<uniform> params: RowParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read> idx: array<u32>;

fn thread_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return linear_workgroup_id(wid, nwg) * 256u + lid;
}

@compute @workgroup_size(256)
fn gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let e = thread_index(wid, nwg, lid);
    if (e >= params.count) {
        return;
    }
    let row = e / params.row_len;
    let col = e % params.row_len;
    let s = idx[row];
    var val = 0.0;
    if (s < params.src_rows) {
        val = src[s * params.row_len + col];
    }
    dst[e] = val;
}

@compute @workgroup_size(256)
fn zero_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let e = thread_index(wid, nwg, lid);
    if (e >= params.count) {
        return;
    }
    let r = idx[e / params.row_len];
    if (r < params.dst_rows) {
        dst[r * params.row_len + e % params.row_len] = 0.0;
    }
}

@compute @workgroup_size(256)
fn zero_mask(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let e = thread_index(wid, nwg, lid);
    if (e >= params.count) {
        return;
    }
    if (idx[e / params.row_len] != 0u) {
        dst[e] = 0.0;
    }
}
