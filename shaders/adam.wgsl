// Adam (Kingma & Ba 2015) with bias correction, updating parameters in place.
//
//   m <- b1 m + (1 - b1) g
//   v <- b2 v + (1 - b2) g^2
//   p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
//
// A parameter tensor is seen as rows of `row_len` elements (one row per splat).
// The first `first_cols` elements of a row use `lr_first`, the rest `lr_rest`
// (SH: band 0 and the higher bands). Entry points:
//   main        : one thread per element, one second moment per element.
//   main_shared : one thread per row; the row shares one second moment, updated
//                 with the mean of g^2 over the row (used for SH coefficients).

#include "common.wgsl"

// AdamParams: brushpy/optim/adam.py ADAM_PARAMS
#struct AdamParams

@group(0) @binding(0) var<uniform> params: AdamParams;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> exp_avg: array<f32>;
@group(0) @binding(4) var<storage, read_write> exp_avg_sq: array<f32>;

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.count) {
        return;
    }
    let col = i % params.row_len;
    let lr = select(params.lr_rest, params.lr_first, col < params.first_cols);
    let g = grad[i];
    let m = params.beta1 * exp_avg[i] + params.one_minus_beta1 * g;
    let v = params.beta2 * exp_avg_sq[i] + params.one_minus_beta2 * (g * g);
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    param[i] = param[i] - lr * (m * params.inv_bc1) / (sqrt(v * params.inv_bc2) + params.eps);
}

@compute @workgroup_size(256)
fn main_shared(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let r = linear_workgroup_id(wid, nwg) * 256u + lid;
    if (r >= params.count) {
        return;
    }
    let base = r * params.row_len;
    var g2 = 0.0;
    for (var j = 0u; j < params.row_len; j = j + 1u) {
        let g = grad[base + j];
        g2 = g2 + g * g;
    }
    let v = params.beta2 * exp_avg_sq[r] + params.one_minus_beta2 * (g2 / f32(params.row_len));
    exp_avg_sq[r] = v;
    let denom = sqrt(v * params.inv_bc2) + params.eps;
    for (var j = 0u; j < params.row_len; j = j + 1u) {
        let i = base + j;
        let lr = select(params.lr_rest, params.lr_first, j < params.first_cols);
        let m = params.beta1 * exp_avg[i] + params.one_minus_beta1 * grad[i];
        exp_avg[i] = m;
        param[i] = param[i] - lr * (m * params.inv_bc1) / denom;
    }
}
