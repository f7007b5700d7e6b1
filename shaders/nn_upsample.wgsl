// Bilinear up-sampling by an integer factor F, NCHW float32, align_corners=False (PyTorch's
// F.interpolate(scale_factor=F, mode="bilinear")); brushpy/nn/upsample.py, reference:
// brushpy/nn/reference.py upsample_bilinear / _vjp.
//
// Along each axis, output o samples src = max((o + 0.5) / F - 0.5, 0) between i0 = floor(src)
// and i1 = min(i0 + 1, n - 1) with weight lambda = src - i0 on i1. The 2D weight is the product
// of the two axes' weights.
//
// forward : one thread per output element (reads 4 inputs).
// backward: one thread per input element; it gathers the outputs o within [(i-1)F, (i+2)F) whose
//           taps include i (no atomics, deterministic).

#include "common.wgsl"

// UpParams: brushpy/nn/upsample.py UP_PARAMS
#struct UpParams

@group(0) @binding(0) var<uniform> params: UpParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

struct Taps {
    i0: u32,
    i1: u32,
    lam: f32,
}

fn taps(o: u32, n: u32) -> Taps {
    let s = max((f32(o) + 0.5) / f32(params.factor) - 0.5, 0.0);
    let i0 = min(u32(floor(s)), n - 1u);
    return Taps(i0, min(i0 + 1u, n - 1u), s - f32(i0));
}

// weight of input index i in output o along an axis of n inputs
fn weight_of(o: u32, i: u32, n: u32) -> f32 {
    let t = taps(o, n);
    return select(0.0, 1.0 - t.lam, t.i0 == i) + select(0.0, t.lam, t.i1 == i);
}

@compute @workgroup_size(256)
fn forward(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.count) {
        return;
    }
    let ox = i % params.wo;
    let oy = (i / params.wo) % params.ho;
    let plane = i / (params.wo * params.ho);
    let base = plane * params.h * params.w;
    let ty = taps(oy, params.h);
    let tx = taps(ox, params.w);
    let top = (1.0 - tx.lam) * src[base + ty.i0 * params.w + tx.i0] + tx.lam * src[base + ty.i0 * params.w + tx.i1];
    let bot = (1.0 - tx.lam) * src[base + ty.i1 * params.w + tx.i0] + tx.lam * src[base + ty.i1 * params.w + tx.i1];
    dst[i] = (1.0 - ty.lam) * top + ty.lam * bot;
}

@compute @workgroup_size(256)
fn backward(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.count) {
        return;
    }
    let ix = i % params.w;
    let iy = (i / params.w) % params.h;
    let plane = i / (params.w * params.h);
    let base = plane * params.ho * params.wo;
    let f = params.factor;
    let y_lo = select(0u, (iy - 1u) * f, iy > 0u);
    let y_hi = min((iy + 2u) * f, params.ho);
    let x_lo = select(0u, (ix - 1u) * f, ix > 0u);
    let x_hi = min((ix + 2u) * f, params.wo);
    var acc = 0.0;
    for (var oy = y_lo; oy < y_hi; oy = oy + 1u) {
        let wy = weight_of(oy, iy, params.h);
        if (wy == 0.0) {
            continue;
        }
        for (var ox = x_lo; ox < x_hi; ox = ox + 1u) {
            acc = acc + wy * weight_of(ox, ix, params.w) * src[base + oy * params.wo + ox];
        }
    }
    dst[i] = acc;
}
