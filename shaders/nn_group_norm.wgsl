// Group normalisation with affine weight/bias, NCHW float32 (brushpy/nn/norm.py; reference:
// brushpy/nn/reference.py group_norm / group_norm_vjp; Wu & He 2018).
//
// The channels of a sample are split into G groups of C/G; a group's C/G*H*W values are
// contiguous in memory. Per group: mean, biased variance, rstd = 1/sqrt(var + eps);
//   xhat = (x - mean) * rstd,   y = gamma[c] xhat + beta[c].
// Backward, with d = gout * gamma[c] and means over the group:
//   dx = rstd (d - mean(d) - xhat mean(d xhat)),  dgamma[c] = sum gout xhat,  dbeta[c] = sum gout.
//
// Reductions: one workgroup of 256 per group (stats, backward_stats) or per channel
// (backward_affine), tree sums (reduce.wgsl): deterministic. Elementwise passes: one thread
// per element. Defines: BACKWARD.

#include "common.wgsl"
#include "reduce.wgsl"

// NormParams: brushpy/nn/norm.py NORM_PARAMS
#struct NormParams

@group(0) @binding(0) var<uniform> params: NormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;

fn channel_of(i: u32) -> u32 {
    return (i / params.hw) % params.channels;
}

fn group_of(i: u32) -> u32 {
    return i / params.group_size;  // = b * G + g: groups are contiguous
}

#if !BACKWARD
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn group_stats(inv: Thread) {
    let bg = workgroup_index(inv);
    let lid = inv.lid;
    let base = bg * params.group_size;
    let n = params.group_size;
    var s = 0.0;
    for (var j = lid; j < n; j = j + 256u) {
        s = s + x[base + j];
    }
    let mean = workgroup_sum2(lid, vec2<f32>(s, 0.0)).x / f32(n);
    var q = 0.0;
    for (var j = lid; j < n; j = j + 256u) {
        let d = x[base + j] - mean;
        q = q + d * d;
    }
    let var_ = workgroup_sum2(lid, vec2<f32>(q, 0.0)).x / f32(n);
    if (lid == 0u && bg < params.groups_total) {
        stats[2u * bg] = mean;
        stats[2u * bg + 1u] = inverseSqrt(var_ + params.eps);
    }
}

@compute @workgroup_size(256)
fn forward(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.count) {
        return;
    }
    let c = channel_of(i);
    let bg = group_of(i);
    y[i] = (x[i] - stats[2u * bg]) * stats[2u * bg + 1u] * gamma[c] + beta[c];
}
#else
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> gout: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad_x: array<f32>;
@group(0) @binding(6) var<storage, read_write> gsums: array<f32>;
@group(0) @binding(7) var<storage, read_write> grad_gamma: array<f32>;
@group(0) @binding(8) var<storage, read_write> grad_beta: array<f32>;

fn xhat(i: u32, bg: u32) -> f32 {
    return (x[i] - stats[2u * bg]) * stats[2u * bg + 1u];
}

// per group: sum(d), sum(d * xhat), d = gout * gamma[c]
@compute @workgroup_size(256)
fn backward_stats(inv: Thread) {
    let bg = workgroup_index(inv);
    let lid = inv.lid;
    let base = bg * params.group_size;
    var acc = vec2<f32>(0.0, 0.0);
    for (var j = lid; j < params.group_size; j = j + 256u) {
        let i = base + j;
        let d = gout[i] * gamma[channel_of(i)];
        acc = acc + vec2<f32>(d, d * xhat(i, bg));
    }
    let total = workgroup_sum2(lid, acc);
    if (lid == 0u && bg < params.groups_total) {
        gsums[2u * bg] = total.x;
        gsums[2u * bg + 1u] = total.y;
    }
}

@compute @workgroup_size(256)
fn backward_input(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.count) {
        return;
    }
    let bg = group_of(i);
    let inv_n = 1.0 / f32(params.group_size);
    let d = gout[i] * gamma[channel_of(i)];
    grad_x[i] = stats[2u * bg + 1u] * (d - gsums[2u * bg] * inv_n - xhat(i, bg) * gsums[2u * bg + 1u] * inv_n);
}

// per channel c: sum over samples and pixels of gout * xhat and of gout
@compute @workgroup_size(256)
fn backward_affine(inv: Thread) {
    let c = workgroup_index(inv);
    let lid = inv.lid;
    let per_group = params.channels / params.groups;
    var acc = vec2<f32>(0.0, 0.0);
    let n = params.batch * params.hw;
    for (var j = lid; j < n; j = j + 256u) {
        let b = j / params.hw;
        let i = (b * params.channels + c) * params.hw + j % params.hw;
        let bg = b * params.groups + c / per_group;
        let g = gout[i];
        acc = acc + vec2<f32>(g * xhat(i, bg), g);
    }
    let total = workgroup_sum2(lid, acc);
    if (lid == 0u && c < params.channels) {
        grad_gamma[c] = total.x;
        grad_beta[c] = total.y;
    }
}
#endif
