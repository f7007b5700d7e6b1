// MIP loss, per view: the gradient of the view's loss term with respect to the
// rendered image [H,W,4] = (x, x, x, 1). The MSE term reads the r channel; the
// SSIM term is brushpy.loss.ImageLoss run with ssim_weight = 1 on all of r, g, b
// (whose mean SSIM over channels is the grey SSIM), its gradient v_ssim [H,W,4]:
//   v_image[p] = (scale_mse · 2 (x - y) + scale_ssim · v_ssim.r,
//                 scale_ssim · v_ssim.g, scale_ssim · v_ssim.b, 0)
// (the renderer's backward sums r, g, b into the gradient of x), and writes
// per-workgroup sums of (x - y)^2 to partials[partial_offset + wg].

#include "common.wgsl"
#include "reduce.wgsl"

#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> image: array<f32>;
@group(0) @binding(2) var<storage, read> gt: array<f32>;
@group(0) @binding(3) var<storage, read> v_ssim: array<f32>;
@group(0) @binding(4) var<storage, read_write> v_image: array<f32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let wg = workgroup_index(inv);
    let i = wg * 256u + inv.lid;
    var sq = 0.0;
    if i < params.count {
        let diff = image[4u * i] - gt[4u * i];
        sq = diff * diff;
        var vs = vec3<f32>(0.0);
        if params.scale_ssim != 0.0 {  // v_ssim is not written when the SSIM term is off
            vs = params.scale_ssim * vec3<f32>(v_ssim[4u * i], v_ssim[4u * i + 1u], v_ssim[4u * i + 2u]);
        }
        v_image[4u * i] = params.scale_mse * 2.0 * diff + vs.x;
        v_image[4u * i + 1u] = vs.y;
        v_image[4u * i + 2u] = vs.z;
        v_image[4u * i + 3u] = 0.0;
    }
    let total = workgroup_sum2(inv.lid, vec2<f32>(sq, 0.0)).x;
    if inv.lid == 0u {
        partials[params.partial_offset + wg] = total;
    }
}
