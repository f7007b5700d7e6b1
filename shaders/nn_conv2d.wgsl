// 2D convolution, NCHW float32, zero padding K/2 (brushpy/nn/conv.py; maths and the float64
// reference: brushpy/nn/reference.py conv2d / conv2d_vjp).
//
//   y[b,o,i,j] = bias[o] + sum_{c,ky,kx} w[o,c,ky,kx] * x[b, c, S*i + ky - P, S*j + kx - P]
//
// Defines: K (kernel size, odd), S (stride), BACKWARD (the three gradient entry points
// instead of the forward). One thread per output element (forward), per input element
// (backward_input), per weight element (backward_weight), per output channel
// (backward_bias): every value is a plain sum (no atomics), so results are deterministic.

#include "common.wgsl"

// ConvParams: brushpy/nn/conv.py CONV_PARAMS
#struct ConvParams

const K: u32 = {{K}}u;
const S: u32 = {{S}}u;

@group(0) @binding(0) var<uniform> params: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;

#if !BACKWARD
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn forward(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.count) {
        return;
    }
    let ox = i % params.wo;
    let oy = (i / params.wo) % params.ho;
    let o = (i / (params.wo * params.ho)) % params.cout;
    let b = i / (params.wo * params.ho * params.cout);
    let pad = i32(K / 2u);
    var acc = bias[o];
    for (var c = 0u; c < params.cin; c = c + 1u) {
        let xbase = (b * params.cin + c) * params.h * params.w;
        let wbase = (o * params.cin + c) * K * K;
        for (var ky = 0u; ky < K; ky = ky + 1u) {
            let iy = i32(oy * S + ky) - pad;
            if (iy < 0 || iy >= i32(params.h)) {
                continue;
            }
            for (var kx = 0u; kx < K; kx = kx + 1u) {
                let ix = i32(ox * S + kx) - pad;
                if (ix < 0 || ix >= i32(params.w)) {
                    continue;
                }
                acc = acc + x[xbase + u32(iy) * params.w + u32(ix)] * weight[wbase + ky * K + kx];
            }
        }
    }
    y[i] = acc;
}
#else
@group(0) @binding(3) var<storage, read> gout: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_x: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad_weight: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad_bias: array<f32>;

// dL/dx[b,c,iy,ix] = sum over (o, ky, kx) with iy + P - ky = S*oy (0 <= oy < Ho), same in x
@compute @workgroup_size(256)
fn backward_input(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.count) {
        return;
    }
    let ix = i % params.w;
    let iy = (i / params.w) % params.h;
    let c = (i / (params.w * params.h)) % params.cin;
    let b = i / (params.w * params.h * params.cin);
    let pad = i32(K / 2u);
    var acc = 0.0;
    for (var o = 0u; o < params.cout; o = o + 1u) {
        let gbase = (b * params.cout + o) * params.ho * params.wo;
        let wbase = (o * params.cin + c) * K * K;
        for (var ky = 0u; ky < K; ky = ky + 1u) {
            let ty = i32(iy) + pad - i32(ky);
            if (ty < 0 || ty % i32(S) != 0) {
                continue;
            }
            let oy = u32(ty) / S;
            if (oy >= params.ho) {
                continue;
            }
            for (var kx = 0u; kx < K; kx = kx + 1u) {
                let tx = i32(ix) + pad - i32(kx);
                if (tx < 0 || tx % i32(S) != 0) {
                    continue;
                }
                let ox = u32(tx) / S;
                if (ox >= params.wo) {
                    continue;
                }
                acc = acc + gout[gbase + oy * params.wo + ox] * weight[wbase + ky * K + kx];
            }
        }
    }
    grad_x[i] = acc;
}

// dL/dw[o,c,ky,kx] = sum_{b,oy,ox} gout[b,o,oy,ox] * x[b,c,S*oy+ky-P,S*ox+kx-P]
@compute @workgroup_size(256)
fn backward_weight(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.count) {
        return;
    }
    let kx = i % K;
    let ky = (i / K) % K;
    let c = (i / (K * K)) % params.cin;
    let o = i / (K * K * params.cin);
    let pad = i32(K / 2u);
    var acc = 0.0;
    for (var b = 0u; b < params.batch; b = b + 1u) {
        let gbase = (b * params.cout + o) * params.ho * params.wo;
        let xbase = (b * params.cin + c) * params.h * params.w;
        for (var oy = 0u; oy < params.ho; oy = oy + 1u) {
            let iy = i32(oy * S + ky) - pad;
            if (iy < 0 || iy >= i32(params.h)) {
                continue;
            }
            for (var ox = 0u; ox < params.wo; ox = ox + 1u) {
                let ix = i32(ox * S + kx) - pad;
                if (ix < 0 || ix >= i32(params.w)) {
                    continue;
                }
                acc = acc + gout[gbase + oy * params.wo + ox] * x[xbase + u32(iy) * params.w + u32(ix)];
            }
        }
    }
    grad_weight[i] = acc;
}

// dL/dbias[o] = sum_{b,oy,ox} gout[b,o,oy,ox]
@compute @workgroup_size(256)
fn backward_bias(inv: Thread) {
    let o = thread_index(inv);
    if (o >= params.cout) {
        return;
    }
    let n = params.ho * params.wo;
    var acc = 0.0;
    for (var b = 0u; b < params.batch; b = b + 1u) {
        let gbase = (b * params.cout + o) * n;
        for (var j = 0u; j < n; j = j + 1u) {
            acc = acc + gout[gbase + j];
        }
    }
    grad_bias[o] = acc;
}
#endif
