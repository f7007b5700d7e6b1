// Soft-MIP rasterization, backward: walks the same tile lists as the forward.
// For pixel value out = exp(M + log(S)/p) with l_k = log a_k - σ_k:
//   dL/dl_k = v_out · out · w_k,   w_k = exp(p (l_k - M) - log S)
//   dL/dlog a_k += dL/dl_k,  dL/dσ_k = -dL/dl_k,
//   dσ/dmean2d = (A dx + B dy, B dx + C dy),  dσ/d(A, B, C) = (½dx², dx dy, ½dy²).
// Per-Gaussian sums go to v_proj [K,6] (v_u, v_v, v_A, v_B, v_C, v_log_a) with
// f32 atomics (HAS_FLOAT_ATOMICS) or a compare-and-swap loop; with subgroups
// the subgroup sums first and one lane does the atomics.
// Maths: tests/reference/mip.py (rasterize_vjp).

#include "common.wgsl"
#include "mip_common.wgsl"

@group(0) @binding(0) var<storage, read> view: View;
@group(0) @binding(1) var<storage, read> proj: array<f32>;
@group(0) @binding(2) var<storage, read> tile_ranges: array<u32>;
@group(0) @binding(3) var<storage, read> isect_ids: array<u32>;
@group(0) @binding(4) var<storage, read> image: array<f32>;
@group(0) @binding(5) var<storage, read> state: array<f32>;
@group(0) @binding(6) var<storage, read> v_out: array<f32>;

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

const BATCH: u32 = 256u;
var<workgroup> batch_xy: array<vec2<f32>, 256>;
var<workgroup> batch_conic: array<vec4<f32>, 256>;
var<workgroup> batch_id: array<u32, 256>;
var<workgroup> wg_range: vec2<u32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
#if HAS_SUBGROUPS
    @builtin(subgroup_invocation_id) lane: u32,
#endif
) {
    let num_tiles = view.tiles_x * view.tiles_y;
    let tile = linear_workgroup_id(wid, nwg);
    let tile_ok = tile < num_tiles;
    let tx = select(0u, tile % view.tiles_x, tile_ok);
    let ty = select(0u, tile / view.tiles_x, tile_ok);
    let px = tx * TILE + lid % TILE;
    let py = ty * TILE + lid / TILE;
    let inside = tile_ok && px < view.width && py < view.height;
    let pixel = vec2<f32>(f32(px) + 0.5, f32(py) + 0.5);
    let p = view.power;
    var m = 0.0;
    var log_s = 0.0;
    var gscale = 0.0;   // v_out * out
    if inside {
        let pix = py * view.width + px;
        m = state[2u * pix];
        log_s = state[2u * pix + 1u];
        gscale = v_out[pix] * image[4u * pix];
    }
    if lid == 0u {
        if tile_ok {
            wg_range = vec2<u32>(tile_ranges[2u * tile], tile_ranges[2u * tile + 1u]);
        } else {
            wg_range = vec2<u32>(0u, 0u);
        }
    }
    let r = workgroupUniformLoad(&wg_range);
    var start = r.x;
    loop {
        if start >= r.y {
            break;
        }
        let count = min(BATCH, r.y - start);
        workgroupBarrier();
        if lid < count {
            let g = isect_ids[start + lid];
            let b = PROJ_STRIDE * g;
            batch_id[lid] = g;
            batch_xy[lid] = vec2<f32>(proj[b], proj[b + 1u]);
            batch_conic[lid] = vec4<f32>(proj[b + 2u], proj[b + 3u], proj[b + 4u], proj[b + 5u]);
        }
        workgroupBarrier();
        for (var j = 0u; j < count; j++) {
            let d = batch_xy[j] - pixel;
            let cn = batch_conic[j];
            let sig = 0.5 * (cn.x * d.x * d.x + cn.z * d.y * d.y) + cn.y * d.x * d.y;
            var ga = vec4<f32>(0.0);
            var gb = vec2<f32>(0.0);
            let has = gscale != 0.0 && sig <= cn.w + LOG255;
            if has {
                let gl = gscale * exp(p * (cn.w - sig - m) - log_s);
                let vs = -gl;
                ga = vec4<f32>(vs * (cn.x * d.x + cn.y * d.y), vs * (cn.y * d.x + cn.z * d.y),
                               vs * 0.5 * d.x * d.x, vs * d.x * d.y);
                gb = vec2<f32>(vs * 0.5 * d.y * d.y, gl);
            }
#if HAS_SUBGROUPS
            if subgroupAny(has) {
                let sa = subgroupAdd(ga);
                let sb = subgroupAdd(gb);
                if lane == 0u {
                    add_all(batch_id[j], sa, sb);
                }
            }
#else
            if has {
                add_all(batch_id[j], ga, gb);
            }
#endif
        }
        start += count;
    }
}
