// Soft-MIP rasterization, backward: walks the same tile lists as the forward.
// For pixel value out = exp(M + log(S)/p) with l_k = log a_k - σ_k:
//   dL/dl_k = v_out · out · w_k,   w_k = exp(p (l_k - M) - log S)
//   dL/dlog a_k += dL/dl_k,  dL/dσ_k = -dL/dl_k,
//   dσ/dmean2d = (A dx + B dy, B dx + C dy),  dσ/d(A, B, C) = (½dx², dx dy, ½dy²).
// Gaussian-parallel: the tile's 256 pixels (v_out·out, M, log S) are staged in
// workgroup memory; each thread takes one Gaussian of the tile list, sums its
// gradient over the pixels in registers, and adds the sums to v_proj [K,6]
// (v_u, v_v, v_A, v_B, v_C, v_log_a) once per tile: f32 atomics
// (HAS_FLOAT_ATOMICS) or a compare-and-swap loop on the bit pattern.
// v_image [H,W,4] is the gradient of the image (out, out, out, 1): the gradient of
// out is v_out = v_image.r + v_image.g + v_image.b (alpha is constant).
// Maths: tests/reference/mip.py (rasterize_vjp).

#include "common.wgsl"
#include "mip_common.wgsl"

@group(0) @binding(0) var<storage, read> view: View;
@group(0) @binding(1) var<storage, read> proj: array<f32>;
@group(0) @binding(2) var<storage, read> tile_ranges: array<u32>;
@group(0) @binding(3) var<storage, read> isect_ids: array<u32>;
@group(0) @binding(4) var<storage, read> image: array<f32>;
@group(0) @binding(5) var<storage, read> state: array<f32>;
@group(0) @binding(6) var<storage, read> v_image: array<f32>;

#if HAS_FLOAT_ATOMICS
@group(0) @binding(7) var<storage, read_write> v_proj: array<atomic<f32>>;

fn add_grad(i: u32, v: f32) {
    atomicAdd(&v_proj[i], v);
}
#else
@group(0) @binding(7) var<storage, read_write> v_proj: array<atomic<u32>>;

fn add_grad(i: u32, v: f32) {
    var old = atomicLoad(&v_proj[i]);
    loop {
        let res = atomicCompareExchangeWeak(&v_proj[i], old, bitcast<u32>(bitcast<f32>(old) + v));
        if res.exchanged {
            break;
        }
        old = res.old_value;
    }
}
#endif

fn add_all(g: u32, a: vec4<f32>, b: vec2<f32>) {
    let base = VPROJ_STRIDE * g;
    add_grad(base, a.x);
    add_grad(base + 1u, a.y);
    add_grad(base + 2u, a.z);
    add_grad(base + 3u, a.w);
    add_grad(base + 4u, b.x);
    add_grad(base + 5u, b.y);
}

var<workgroup> pix_xy: array<vec2<f32>, 256>;
var<workgroup> pix_state: array<vec4<f32>, 256>;  // v_out·out, M, log S, unused
var<workgroup> wg_info: vec4<u32>;                // range start, end, any gradient

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let tile = workgroup_index(inv);
    let tp = tile_pixel(view, tile, inv.lid);
    var st = vec4<f32>(0.0);
    if tp.inside {
        let pix = tp.py * view.width + tp.px;
        let v_out = v_image[4u * pix] + v_image[4u * pix + 1u] + v_image[4u * pix + 2u];
        st = vec4<f32>(v_out * image[4u * pix], state[2u * pix], state[2u * pix + 1u], 0.0);
    }
    if inv.lid == 0u {
        wg_info = vec4<u32>(0u);
        if tp.tile_ok {
            wg_info.x = tile_ranges[2u * tile];
            wg_info.y = tile_ranges[2u * tile + 1u];
        }
    }
    pix_xy[inv.lid] = vec2<f32>(f32(tp.px) + 0.5, f32(tp.py) + 0.5);
    pix_state[inv.lid] = st;
    workgroupBarrier();
    if st.x != 0.0 {
        wg_info.z = 1u;
    }
    let info = workgroupUniformLoad(&wg_info);
    if info.z == 0u {
        return;
    }
    let p = view.power;
    for (var i = info.x + inv.lid; i < info.y; i += 256u) {
        let g = isect_ids[i];
        let b = PROJ_STRIDE * g;
        let xy = vec2<f32>(proj[b], proj[b + 1u]);
        let cn = vec4<f32>(proj[b + 2u], proj[b + 3u], proj[b + 4u], proj[b + 5u]);
        let cut = cn.w + LOG255;
        var ga = vec4<f32>(0.0);
        var gb = vec2<f32>(0.0);
        for (var k = 0u; k < 256u; k++) {
            let ps = pix_state[k];
            if ps.x == 0.0 {
                continue;
            }
            let d = xy - pix_xy[k];
            let sig = conic_sigma(cn, d);
            if sig <= cut {
                let gl = ps.x * exp(p * (cn.w - sig - ps.y) - ps.z);
                let vs = -gl;
                ga += vec4<f32>(vs * (cn.x * d.x + cn.y * d.y), vs * (cn.y * d.x + cn.z * d.y),
                                vs * 0.5 * d.x * d.x, vs * d.x * d.y);
                gb += vec2<f32>(vs * 0.5 * d.y * d.y, gl);
            }
        }
        if any(ga != vec4<f32>(0.0)) || any(gb != vec2<f32>(0.0)) {
            add_all(g, ga, gb);
        }
    }
}
