// Correlation cost volume (brushpy/nn/correlation.py; reference: brushpy/nn/reference.py
// correlation / correlation_vjp), the matching score of MVSplat / DepthSplat:
//   out[d, p]   = scale * sum_c a[c, p] * b[c, d, p]          a: [C, P], b: [C, D, P], P = H*W
//   backward  grad_a[c, p]    = scale * sum_d g[d, p] * b[c, d, p]
//             grad_b[c, d, p] = scale * g[d, p] * a[c, p]
// One thread per output element of each entry point (gathers, no atomics).

#include "common.wgsl"

// CorrParams: brushpy/nn/correlation.py CORR_PARAMS
#struct CorrParams

@group(0) @binding(0) var<uniform> params: CorrParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> gout: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn forward(inv: Thread) {
    let i = thread_index(inv);  // d * P + p
    if (i >= params.count) {
        return;
    }
    let p = i % params.pixels;
    let d = i / params.pixels;
    let dp = params.planes * params.pixels;
    var s = 0.0;
    for (var c = 0u; c < params.channels; c = c + 1u) {
        s = s + a[c * params.pixels + p] * b[c * dp + d * params.pixels + p];
    }
    out[i] = s * params.scale;
}

@compute @workgroup_size(256)
fn backward_a(inv: Thread) {
    let i = thread_index(inv);  // c * P + p
    if (i >= params.count) {
        return;
    }
    let p = i % params.pixels;
    let c = i / params.pixels;
    let dp = params.planes * params.pixels;
    var s = 0.0;
    for (var d = 0u; d < params.planes; d = d + 1u) {
        s = s + gout[d * params.pixels + p] * b[c * dp + d * params.pixels + p];
    }
    out[i] = s * params.scale;
}

@compute @workgroup_size(256)
fn backward_b(inv: Thread) {
    let i = thread_index(inv);  // (c * D + d) * P + p
    if (i >= params.count) {
        return;
    }
    let p = i % params.pixels;
    let cd = i / params.pixels;
    let d = cd % params.planes;
    let c = cd / params.planes;
    out[i] = params.scale * gout[d * params.pixels + p] * a[c * params.pixels + p];
}
