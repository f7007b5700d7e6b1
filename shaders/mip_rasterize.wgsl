// Soft-MIP rasterization, forward: one workgroup per 16x16 tile, one thread
// per pixel; the tile's Gaussians are staged through workgroup memory.
//
//   c_k = a_k exp(-σ_k),  σ_k = ½ A dx² + B dx dy + ½ C dy²,  d = mean2d - pixel centre
//   out = (Σ_k c_k^p)^(1/p)   over the Gaussians with c_k >= 1/255
//
// evaluated in the log domain with a running maximum M of l_k = log c_k:
// S = Σ exp(p (l_k - M)), out = exp(M + log(S) / p) (0 if nothing contributes).
// Writes image [H,W,4] = (out, out, out, 1) and state [H,W,2] = (M, log S).
// Maths: tests/reference/mip.py (rasterize).

#include "common.wgsl"
#include "mip_common.wgsl"

@group(0) @binding(0) var<storage, read> view: View;
@group(0) @binding(1) var<storage, read> proj: array<f32>;
@group(0) @binding(2) var<storage, read> tile_ranges: array<u32>;
@group(0) @binding(3) var<storage, read> isect_ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> image: array<f32>;
@group(0) @binding(5) var<storage, read_write> state: array<f32>;

const BATCH: u32 = 256u;
var<workgroup> batch_xy: array<vec2<f32>, 256>;
var<workgroup> batch_conic: array<vec4<f32>, 256>;  // A, B, C, log_a
var<workgroup> wg_range: vec2<u32>;

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let tile = workgroup_index(inv);
    let tp = tile_pixel(view, tile, inv.lid);
    let pixel = vec2<f32>(f32(tp.px) + 0.5, f32(tp.py) + 0.5);
    if inv.lid == 0u {
        if tp.tile_ok {
            wg_range = vec2<u32>(tile_ranges[2u * tile], tile_ranges[2u * tile + 1u]);
        } else {
            wg_range = vec2<u32>(0u, 0u);
        }
    }
    let r = workgroupUniformLoad(&wg_range);
    let p = view.power;
    var m = -1e30;
    var s = 0.0;
    var start = r.x;
    loop {
        if start >= r.y {
            break;
        }
        let count = min(BATCH, r.y - start);
        workgroupBarrier();
        if inv.lid < count {
            let g = isect_ids[start + inv.lid];
            let b = PROJ_STRIDE * g;
            batch_xy[inv.lid] = vec2<f32>(proj[b], proj[b + 1u]);
            batch_conic[inv.lid] = vec4<f32>(proj[b + 2u], proj[b + 3u], proj[b + 4u], proj[b + 5u]);
        }
        workgroupBarrier();
        for (var j = 0u; j < count; j++) {
            let d = batch_xy[j] - pixel;
            let cn = batch_conic[j];
            let sig = conic_sigma(cn, d);
            if sig <= cn.w + LOG255 {
                let l = cn.w - sig;
                if l > m {
                    s = s * exp(p * (m - l)) + 1.0;
                    m = l;
                } else {
                    s = s + exp(p * (l - m));
                }
            }
        }
        start += count;
    }
    if tp.inside {
        let pix = tp.py * view.width + tp.px;
        var out = 0.0;
        var log_s = 0.0;
        if s > 0.0 {
            log_s = log(s);
            out = exp(m + log_s / p);
        } else {
            m = 0.0;
        }
        image[4u * pix] = out;
        image[4u * pix + 1u] = out;
        image[4u * pix + 2u] = out;
        image[4u * pix + 3u] = 1.0;
        state[2u * pix] = m;
        state[2u * pix + 1u] = log_s;
    }
}
