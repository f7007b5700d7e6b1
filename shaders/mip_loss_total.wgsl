// MIP loss total (one workgroup): out = (loss, mean MSE, mean (1 - SSIM), 0) with
//   loss = (1/V) Σ_v λ_MSE·MSE_v + λ_SSIM·(1 - SSIM_v)
// from the per-workgroup squared-error sums and each view's 1 - SSIM.

#include "reduce.wgsl"

#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read> ssim_losses: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    let n = params.partials_per_view * params.views;
    var acc = 0.0;
    for (var i = lid; i < n; i += 256u) {
        acc += partials[i];
    }
    let total = workgroup_sum2(lid, vec2<f32>(acc, 0.0)).x;
    if lid == 0u {
        var ssim_l = 0.0;
        for (var v = 0u; v < params.views; v++) {
            ssim_l += ssim_losses[v];
        }
        let inv_v = 1.0 / f32(params.views);
        let mse = total * params.inv_pixels * inv_v;
        ssim_l = ssim_l * inv_v;
        out[0] = params.lambda_mse * mse + params.lambda_ssim * ssim_l;
        out[1] = mse;
        out[2] = ssim_l;
        out[3] = 0.0;
    }
}
