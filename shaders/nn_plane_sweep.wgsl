// Plane-sweep warp: source-view features sampled at every reference pixel and depth plane
// (brushpy/nn/warp.py; reference: brushpy/nn/reference.py plane_sweep_warp / _vjp).
//
// Reference pixel (x, y), centre (x + 0.5, y + 0.5), at plane depth d (reference camera z,
// OpenCV axes) is the source-camera point p = d * M (x + .5, y + .5, 1) + t, with
// M = R_rel K_ref^-1 and [R_rel | t] = w2c_src w2c_ref^-1 (computed in float64 on the host).
// It projects to u = fx p.x / p.z + cx, v = fy p.y / p.z + cy (pixel centres at +0.5), and
// is sampled bilinearly at (u - 0.5, v - 0.5) in index space; taps outside the source add 0.
// Valid: p.z > Z_MIN and 0 <= u <= ws, 0 <= v <= hs; invalid samples are 0, mask 0.
//
// Layouts: src [C, hs, ws]; depths [D]; out [C, D, H, W]; mask [D, H, W].
// forward : one thread per (plane, pixel), looping over channels.
// backward: the same threads add g * tap weight into grad_src [C, hs, ws] (cleared first):
//           float atomics when the device has them (HAS_FLOAT_ATOMICS), else a
//           compare-and-swap loop on the bit pattern (as rasterize_backward.wgsl).

#include "common.wgsl"

// WarpParams: brushpy/nn/warp.py WARP_PARAMS
#struct WarpParams

const Z_MIN: f32 = {{Z_MIN}};

@group(0) @binding(0) var<uniform> params: WarpParams;
@group(0) @binding(1) var<storage, read> depths: array<f32>;

struct Sample {
    valid: bool,
    x0: i32,
    y0: i32,
    fx: f32,
    fy: f32,
}

fn sample_at(i: u32) -> Sample {
    let x = i % params.w;
    let y = (i / params.w) % params.h;
    let k = i / (params.w * params.h);
    let pix = vec3<f32>(f32(x) + 0.5, f32(y) + 0.5, 1.0);
    let ray = vec3<f32>(dot(params.m0.xyz, pix), dot(params.m1.xyz, pix), dot(params.m2.xyz, pix));
    let p = depths[k] * ray + params.t.xyz;
    var s = Sample(false, 0, 0, 0.0, 0.0);
    if (!(p.z > Z_MIN)) {
        return s;
    }
    let u = params.k_src.x * p.x / p.z + params.k_src.z;
    let v = params.k_src.y * p.y / p.z + params.k_src.w;
    if (!(u >= 0.0 && u <= f32(params.ws) && v >= 0.0 && v <= f32(params.hs))) {
        return s;
    }
    let sx = u - 0.5;
    let sy = v - 0.5;
    let fx0 = floor(sx);
    let fy0 = floor(sy);
    s.valid = true;
    s.x0 = i32(fx0);
    s.y0 = i32(fy0);
    s.fx = sx - fx0;
    s.fy = sy - fy0;
    return s;
}

// index of tap (x0 + dx, y0 + dy) in a source plane, or -1 outside; its weight in w
fn tap(s: Sample, dx: i32, dy: i32) -> i32 {
    let tx = s.x0 + dx;
    let ty = s.y0 + dy;
    if (tx < 0 || ty < 0 || tx >= i32(params.ws) || ty >= i32(params.hs)) {
        return -1;
    }
    return ty * i32(params.ws) + tx;
}

fn tap_weight(s: Sample, dx: i32, dy: i32) -> f32 {
    let wx = select(1.0 - s.fx, s.fx, dx == 1);
    let wy = select(1.0 - s.fy, s.fy, dy == 1);
    return wx * wy;
}

#if !BACKWARD
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> mask: array<f32>;

@compute @workgroup_size(256)
fn forward(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.count) {
        return;
    }
    let s = sample_at(i);
    mask[i] = select(0.0, 1.0, s.valid);
    let plane = params.hs * params.ws;
    var idx = array<i32, 4>(-1, -1, -1, -1);
    var wt = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    if (s.valid) {
        for (var j = 0; j < 4; j = j + 1) {
            idx[j] = tap(s, j % 2, j / 2);
            wt[j] = tap_weight(s, j % 2, j / 2);
        }
    }
    for (var c = 0u; c < params.channels; c = c + 1u) {
        var acc = 0.0;
        for (var j = 0; j < 4; j = j + 1) {
            if (idx[j] >= 0) {
                acc = acc + wt[j] * src[c * plane + u32(idx[j])];
            }
        }
        out[c * params.count + i] = acc;
    }
}
#else
@group(0) @binding(2) var<storage, read> gout: array<f32>;
#if HAS_FLOAT_ATOMICS
@group(0) @binding(3) var<storage, read_write> grad_src: array<atomic<f32>>;

fn add_grad(i: u32, v: f32) {
    atomicAdd(&grad_src[i], v);
}
#else
@group(0) @binding(3) var<storage, read_write> grad_src: array<atomic<u32>>;

// float add as a compare-and-swap loop on the bit pattern
fn add_grad(i: u32, v: f32) {
    var old = atomicLoad(&grad_src[i]);
    loop {
        let res = atomicCompareExchangeWeak(&grad_src[i], old, bitcast<u32>(bitcast<f32>(old) + v));
        if res.exchanged {
            break;
        }
        old = res.old_value;
    }
}
#endif

@compute @workgroup_size(256)
fn backward(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.count) {
        return;
    }
    let s = sample_at(i);
    if (!s.valid) {
        return;
    }
    let plane = params.hs * params.ws;
    for (var j = 0; j < 4; j = j + 1) {
        let t = tap(s, j % 2, j / 2);
        if (t < 0) {
            continue;
        }
        let w = tap_weight(s, j % 2, j / 2);
        for (var c = 0u; c < params.channels; c = c + 1u) {
            let g = gout[c * params.count + i];
            if (g != 0.0) {
                add_grad(c * plane + u32(t), g * w);
            }
        }
    }
}
#endif
