// Softmax over the depth-candidate axis (dim 1) of [B, D, H, W] float32 (brushpy/nn/softmax.py;
// reference: brushpy/nn/reference.py softmax_depth / _vjp). One thread per (b, pixel) walks
// the D candidates (stride H*W):
//   forward : y_d = exp(x_d - max x) / sum exp(x - max x)
//   backward: dx_d = y_d (g_d - sum_k g_k y_k), from the forward's output y.

#include "common.wgsl"

// SoftmaxParams: brushpy/nn/softmax.py SOFTMAX_PARAMS
#struct SoftmaxParams

@group(0) @binding(0) var<uniform> params: SoftmaxParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;      // forward: x; backward: y
@group(0) @binding(2) var<storage, read> gout: array<f32>;   // backward only
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn first(i: u32) -> u32 {
    let b = i / params.hw;
    return b * params.d * params.hw + i % params.hw;
}

@compute @workgroup_size(256)
fn forward(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.count) {
        return;
    }
    let base = first(i);
    var m = a[base];
    for (var d = 1u; d < params.d; d = d + 1u) {
        m = max(m, a[base + d * params.hw]);
    }
    var s = 0.0;
    for (var d = 0u; d < params.d; d = d + 1u) {
        s = s + exp(a[base + d * params.hw] - m);
    }
    let inv_s = 1.0 / s;
    for (var d = 0u; d < params.d; d = d + 1u) {
        let j = base + d * params.hw;
        out[j] = exp(a[j] - m) * inv_s;
    }
}

@compute @workgroup_size(256)
fn backward(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.count) {
        return;
    }
    let base = first(i);
    var dot = 0.0;
    for (var d = 0u; d < params.d; d = d + 1u) {
        let j = base + d * params.hw;
        dot = dot + gout[j] * a[j];
    }
    for (var d = 0u; d < params.d; d = d + 1u) {
        let j = base + d * params.hw;
        out[j] = a[j] * (gout[j] - dot);
    }
}
