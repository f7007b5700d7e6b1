// Rasterize backward: per-splat gradients of the projected values.
//
// One workgroup per 16x16 tile; each thread owns PIXELS_PER_THREAD pixels
// (rows lid / 16 + k · 16 / PIXELS_PER_THREAD), so the per-splat work that does
// not depend on the pixel (reading the staged splat, reducing and adding the
// gradients) is shared by them. 1 suits GPUs; CPU devices (lavapipe), where
// every subgroup reduction and atomic costs more than the arithmetic, use 4
// (brushpy/render/forward.py: default_pixels_per_thread). The tile's list
// (compact_from_isect[tile start .. end)) is walked back to front in batches
// staged through workgroup memory; each pixel only uses intersections below
// its own final_index, exactly the ones the forward blended or skipped before
// it stopped. Each pixel recovers its transmittance from the final alpha
// (T_i = T_{i+1} / (1 - alpha_i)) and the colour blended behind the current
// splat, and applies the same skip rules as the forward: sigma < 0,
// alpha < 1/255, alpha clamped at 0.999 (no gradient through the clamp).
//
// Output: v_projected [V,9], gradients w.r.t. projected's x, y, conic a, b, c,
// r, g, b, opacity (same layout, compact index), and refine_abs [V], Brush's
// densification statistic: the sum over pixels of (|dL/dx_p| + |dL/dy_p|) /
// max(pixel alpha, 0.001) times max(W, H), where the per-pixel 2D-mean gradient
// ignores the 0.999 clamp. Both are accumulated with atomics:
// float atomics when the device has them (HAS_FLOAT_ATOMICS), otherwise a
// compare-and-swap loop on the bit pattern. With subgroups, the subgroup sums
// its pixels' contributions first and one lane does the atomics.
//
// Depth variants (ACC_DEPTH; the plain kernel compiles none of it): the depth
// D = Σ alpha·T·z is one more colour channel (background 0) with cotangent
// v_depth; EXPECTED_DEPTH (ED = D / max(A, 1e-10), A = 1 - T_final) turns
// v_ED into v_D = v_ED / max(A, 1e-10) and adds -v_ED·ED/A to the alpha
// cotangent (where A > 1e-10). The per-splat gradient w.r.t. z goes to
// v_depths [V] (compact order); project_backward adds it to the camera z.
//
// Maths: tests/reference/render_backward.py (rasterize_projected_vjp).

#include "common.wgsl"

// declared once in brushpy/render/backward.py (RASTERIZE_BACKWARD_PARAMS)
#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> compact_from_isect: array<u32>;
@group(0) @binding(2) var<storage, read> tile_ranges: array<u32>;
@group(0) @binding(3) var<storage, read> projected: array<f32>;
@group(0) @binding(4) var<storage, read> final_index: array<u32>;
@group(0) @binding(5) var<storage, read> image: array<f32>;
@group(0) @binding(6) var<storage, read> v_image: array<f32>;

#if ACC_DEPTH
@group(0) @binding(9) var<storage, read> depths: array<f32>;     // [V] camera z
@group(0) @binding(10) var<storage, read> depth: array<f32>;     // [H,W] forward D or ED
@group(0) @binding(11) var<storage, read> v_depth: array<f32>;   // [H,W]
#endif

#if HAS_FLOAT_ATOMICS
@group(0) @binding(7) var<storage, read_write> v_projected: array<atomic<f32>>;
@group(0) @binding(8) var<storage, read_write> refine_abs: array<atomic<f32>>;
#if ACC_DEPTH
@group(0) @binding(12) var<storage, read_write> v_depths: array<atomic<f32>>;

fn add_depth(i: u32, v: f32) {
    atomicAdd(&v_depths[i], v);
}
#endif

fn add_grad(i: u32, v: f32) {
    atomicAdd(&v_projected[i], v);
}

fn add_refine(i: u32, v: f32) {
    atomicAdd(&refine_abs[i], v);
}
#else
@group(0) @binding(7) var<storage, read_write> v_projected: array<atomic<u32>>;
@group(0) @binding(8) var<storage, read_write> refine_abs: array<atomic<u32>>;
#if ACC_DEPTH
@group(0) @binding(12) var<storage, read_write> v_depths: array<atomic<u32>>;

fn add_depth(i: u32, v: f32) {
    var old = atomicLoad(&v_depths[i]);
    loop {
        let res = atomicCompareExchangeWeak(&v_depths[i], old, bitcast<u32>(bitcast<f32>(old) + v));
        if res.exchanged {
            break;
        }
        old = res.old_value;
    }
}
#endif

// float add as a compare-and-swap loop on the bit pattern
fn add_grad(i: u32, v: f32) {
    var old = atomicLoad(&v_projected[i]);
    loop {
        let res = atomicCompareExchangeWeak(&v_projected[i], old, bitcast<u32>(bitcast<f32>(old) + v));
        if res.exchanged {
            break;
        }
        old = res.old_value;
    }
}

fn add_refine(i: u32, v: f32) {
    var old = atomicLoad(&refine_abs[i]);
    loop {
        let res = atomicCompareExchangeWeak(&refine_abs[i], old, bitcast<u32>(bitcast<f32>(old) + v));
        if res.exchanged {
            break;
        }
        old = res.old_value;
    }
}
#endif

const TILE: u32 = 16u;
const BATCH: u32 = 256u;
const PPT: u32 = {{PIXELS_PER_THREAD}}u;      // pixels per thread
const WG_SIZE: u32 = {{WG_SIZE}}u;            // = TILE * TILE / PPT
const ROWS_PER_STEP: u32 = WG_SIZE / TILE;    // pixel k of a thread is ROWS_PER_STEP · k rows below pixel 0
const STRIDE: u32 = 9u;
const ALPHA_THRESHOLD: f32 = 1.0 / 255.0;
const MAX_ALPHA: f32 = 0.999;

var<workgroup> batch_id: array<u32, BATCH>;
var<workgroup> batch_xy: array<vec2<f32>, BATCH>;
var<workgroup> batch_conic: array<vec3<f32>, BATCH>;
var<workgroup> batch_color: array<vec4<f32>, BATCH>;   // rgb, opacity
#if ACC_DEPTH
var<workgroup> batch_depth: array<f32, BATCH>;
#endif
var<workgroup> wg_end: atomic<u32>;
var<workgroup> wg_range: vec2<u32>;

fn add_all(id: u32, v_xy: vec2<f32>, v_conic: vec3<f32>, v_rgb: vec3<f32>, v_op: f32, v_refine: f32) {
    add_refine(id, v_refine);
    let b = id * STRIDE;
    add_grad(b + 0u, v_xy.x);
    add_grad(b + 1u, v_xy.y);
    add_grad(b + 2u, v_conic.x);
    add_grad(b + 3u, v_conic.y);
    add_grad(b + 4u, v_conic.z);
    add_grad(b + 5u, v_rgb.x);
    add_grad(b + 6u, v_rgb.y);
    add_grad(b + 7u, v_rgb.z);
    add_grad(b + 8u, v_op);
}

@compute @workgroup_size({{WG_SIZE}})
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
#if HAS_SUBGROUPS
    @builtin(subgroup_invocation_id) lane: u32,
#endif
) {
    let num_tiles = params.tiles_x * params.tiles_y;
    let tile = linear_workgroup_id(wid, nwg);
    let tile_ok = tile < num_tiles;
    let tx = select(0u, tile % params.tiles_x, tile_ok);
    let ty = select(0u, tile / params.tiles_x, tile_ok);

    var range = vec2<u32>(0u, 0u);
    if tile_ok {
        range = vec2<u32>(tile_ranges[2u * tile], tile_ranges[2u * tile + 1u]);
    }
    let px = tx * TILE + lid % TILE;
    // per pixel k of this thread: its walk ends at final_index (intersections past it
    // were never reached; pixels outside the image end at the tile's start)
    var pixel_y: array<f32, PPT>;
    var my_end: array<u32, PPT>;
    var T: array<f32, PPT>;
    var v_rgb: array<vec3<f32>, PPT>;
    var v_T_term: array<f32, PPT>;      // (v_rgb . bg - v_alpha_out) * T_final
    var refine_scale: array<f32, PPT>;  // max(W, H) / max(final alpha, 0.001)
    var behind: array<vec3<f32>, PPT>;  // colour blended behind the current splat
#if ACC_DEPTH
    var v_d: array<f32, PPT>;           // cotangent of the accumulated depth D
    var behind_d: array<f32, PPT>;      // depth blended behind the current splat
#endif
    var thread_end = range.x;
    for (var k = 0u; k < PPT; k++) {
        let py = ty * TILE + lid / TILE + k * ROWS_PER_STEP;
        pixel_y[k] = f32(py) + 0.5;
        my_end[k] = range.x;
        T[k] = 1.0;
        v_rgb[k] = vec3<f32>(0.0);
        v_T_term[k] = 0.0;
        refine_scale[k] = 0.0;
        behind[k] = vec3<f32>(0.0);
#if ACC_DEPTH
        v_d[k] = 0.0;
        behind_d[k] = 0.0;
#endif
        if tile_ok && px < params.width && py < params.height {
            let pix = py * params.width + px;
            my_end[k] = final_index[pix];
            let alpha_final = image[4u * pix + 3u];
            T[k] = 1.0 - alpha_final;
            v_rgb[k] = vec3<f32>(v_image[4u * pix], v_image[4u * pix + 1u], v_image[4u * pix + 2u]);
            var v_alpha_out = v_image[4u * pix + 3u];
#if ACC_DEPTH
            v_d[k] = v_depth[pix];
#if EXPECTED_DEPTH
            // ED = D / max(A, 1e-10): v_D = v_ED / max(A, 1e-10), v_A -= v_ED · ED / A
            if alpha_final > 1e-10 {
                v_alpha_out -= v_d[k] * depth[pix] / alpha_final;
            }
            v_d[k] = v_d[k] / max(alpha_final, 1e-10);
#endif
#endif
            v_T_term[k] = (dot(v_rgb[k], params.background.rgb) - v_alpha_out) * T[k];
            refine_scale[k] = f32(max(params.width, params.height)) / max(alpha_final, 0.001);
            thread_end = max(thread_end, my_end[k]);
        }
    }
    let pixel_x = f32(px) + 0.5;

    if lid == 0u {
        atomicStore(&wg_end, range.x);
    }
    workgroupBarrier();
    atomicMax(&wg_end, thread_end);
    workgroupBarrier();
    if lid == 0u {
        wg_range = vec2<u32>(range.x, atomicLoad(&wg_end));
    }
    let r = workgroupUniformLoad(&wg_range);

    var batch_end = r.y;
    loop {
        if batch_end <= r.x {
            break;
        }
        let count = min(BATCH, batch_end - r.x);
        let batch_start = batch_end - count;
        workgroupBarrier();
        for (var slot = lid; slot < count; slot += WG_SIZE) {
            // slot j holds intersection batch_end - 1 - j (back to front)
            let cid = compact_from_isect[batch_end - 1u - slot];
            let b = cid * STRIDE;
            batch_id[slot] = cid;
            batch_xy[slot] = vec2<f32>(projected[b], projected[b + 1u]);
            batch_conic[slot] = vec3<f32>(projected[b + 2u], projected[b + 3u], projected[b + 4u]);
            batch_color[slot] = vec4<f32>(projected[b + 5u], projected[b + 6u], projected[b + 7u], projected[b + 8u]);
#if ACC_DEPTH
            batch_depth[slot] = depths[cid];
#endif
        }
        workgroupBarrier();

        for (var j = 0u; j < count; j++) {
            let isect = batch_end - 1u - j;
            let xy = batch_xy[j];
            let conic = batch_conic[j];
            let col = batch_color[j];
            var g_xy = vec2<f32>(0.0);
            var g_conic = vec3<f32>(0.0);
            var g_rgb = vec3<f32>(0.0);
            var g_op = 0.0;
            var g_refine = 0.0;
#if ACC_DEPTH
            let zj = batch_depth[j];
            var g_z = 0.0;
#endif
            var has = false;
            for (var k = 0u; k < PPT; k++) {
                if isect >= my_end[k] {
                    continue;
                }
                let d = xy - vec2<f32>(pixel_x, pixel_y[k]);
                let sigma = 0.5 * (conic.x * d.x * d.x + conic.z * d.y * d.y) + conic.y * d.x * d.y;
                let vis = exp(-sigma);
                let raw_alpha = col.w * vis;
                let alpha = min(MAX_ALPHA, raw_alpha);
                if sigma >= 0.0 && alpha >= ALPHA_THRESHOLD {
                    has = true;
                    let ra = 1.0 / (1.0 - alpha);
                    let Tk = T[k] * ra;
                    T[k] = Tk;
                    let w = alpha * Tk;
                    let vr = v_rgb[k];
                    g_rgb += w * vr;
                    var v_alpha = dot(vr, Tk * col.rgb - behind[k] * ra) - v_T_term[k] * ra;
                    behind[k] += w * col.rgb;
#if ACC_DEPTH
                    g_z += w * v_d[k];
                    v_alpha += v_d[k] * (Tk * zj - behind_d[k] * ra);
                    behind_d[k] += w * zj;
#endif
                    let dsigma_dxy = vec2<f32>(conic.x * d.x + conic.y * d.y, conic.y * d.x + conic.z * d.y);
                    let v_xy_any = (-alpha * v_alpha) * dsigma_dxy;   // as if unclamped, for the statistic
                    g_refine += (abs(v_xy_any.x) + abs(v_xy_any.y)) * refine_scale[k];
                    if raw_alpha <= MAX_ALPHA {
                        g_op += vis * v_alpha;
                        let v_sigma = -raw_alpha * v_alpha;
                        g_conic += vec3<f32>(0.5 * v_sigma * d.x * d.x, v_sigma * d.x * d.y, 0.5 * v_sigma * d.y * d.y);
                        g_xy += v_sigma * dsigma_dxy;
                    }
                }
            }
#if HAS_SUBGROUPS
            // `count` is workgroup-uniform, so every lane reaches these.
            if subgroupAny(has) {
                let s_xy = subgroupAdd(g_xy);
                let s_conic = subgroupAdd(g_conic);
                let s_rgb = subgroupAdd(g_rgb);
                let s_op = subgroupAdd(g_op);
                let s_refine = subgroupAdd(g_refine);
#if ACC_DEPTH
                let s_z = subgroupAdd(g_z);
#endif
                if lane == 0u {
                    add_all(batch_id[j], s_xy, s_conic, s_rgb, s_op, s_refine);
#if ACC_DEPTH
                    add_depth(batch_id[j], s_z);
#endif
                }
            }
#else
            if has {
                add_all(batch_id[j], g_xy, g_conic, g_rgb, g_op, g_refine);
#if ACC_DEPTH
                add_depth(batch_id[j], g_z);
#endif
            }
#endif
        }
        batch_end = batch_start;
    }
}
