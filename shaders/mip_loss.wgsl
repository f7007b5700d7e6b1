// MIP loss, per view: combines the MSE term with the SSIM gradient of
// brushpy.loss.ImageLoss (run with ssim_weight = 1 on the grey value copied
// into r, g and b, so d(1-SSIM)/dx = v_image.r + v_image.g + v_image.b):
//   v_out[p] = scale_mse · 2 (x - y) + scale_ssim · Σ_rgb v_image[p]
// and writes per-workgroup sums of (x - y)^2 to partials[partial_offset + wg].

#include "common.wgsl"

struct Params {
    count: u32,            // pixels
    partial_offset: u32,
    _pad0: u32,
    _pad1: u32,
    scale_mse: f32,        // λ_MSE / (pixels · views)
    scale_ssim: f32,       // λ_SSIM / views
    _pad2: f32,
    _pad3: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> image: array<f32>;
@group(0) @binding(2) var<storage, read> gt: array<f32>;
@group(0) @binding(3) var<storage, read> v_image: array<f32>;
@group(0) @binding(4) var<storage, read_write> v_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;

var<workgroup> sums: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let wg = linear_workgroup_id(wid, nwg);
    let i = wg * 256u + lid;
    var sq = 0.0;
    if i < params.count {
        let diff = image[4u * i] - gt[4u * i];
        sq = diff * diff;
        let vs = v_image[4u * i] + v_image[4u * i + 1u] + v_image[4u * i + 2u];
        v_out[i] = params.scale_mse * 2.0 * diff + params.scale_ssim * vs;
    }
    sums[lid] = sq;
    workgroupBarrier();
    for (var off = 128u; off > 0u; off = off / 2u) {
        if lid < off {
            sums[lid] = sums[lid] + sums[lid + off];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        partials[params.partial_offset + wg] = sums[0];
    }
}
