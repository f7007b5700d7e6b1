// Forward stage 5: alpha-blend the splats of each 16x16 tile front to back.
// One workgroup per tile; each thread blends PIXELS_PER_THREAD pixels (rows
// lid / 16 + k · 16 / PIXELS_PER_THREAD) so that reading a staged splat is
// shared by them (1 on GPUs, 4 on CPU devices: brushpy/render/forward.py
// picks); the tile's splats are staged through workgroup memory 256 at a time.
//
// Per pixel centre p and splat (mean m, conic [[a, b], [b, c]], opacity o):
//   d = m - p, σ = ½(a dx² + c dy²) + b dx dy, alpha = min(0.999, o exp(-σ));
//   skip when σ < 0 or alpha < 1/255; stop (without blending) at the splat that
//   takes the transmittance T to <= 1e-4. Output rgb + T·background, alpha 1 - T,
//   and final_index = one past the last intersection index processed before
//   stopping (the tile's end when the pixel never stopped).
// Depth variants (brushpy/render/params.py RenderOutputs.kernel_defines; the
// plain RGB kernel compiles none of it): SPLAT_DEPTHS stages each splat's
// camera z (depths, from project_visible) in s_color.w; ACC_DEPTH writes
// depth = Σ alpha·T·z (EXPECTED_DEPTH: divided by max(1 - T, 1e-10));
// MEDIAN_DEPTH writes median_depth = z of the splat that takes T from >= 0.5
// to < 0.5 (0 when T never drops below 0.5).
#include "common.wgsl"
#include "render_common.wgsl"

@group(0) @binding(0) var<uniform> params: RenderParams;
@group(0) @binding(1) var<storage, read> projected: array<f32>;          // [V,9]
@group(0) @binding(2) var<storage, read> compact_from_isect: array<u32>; // [I]
@group(0) @binding(3) var<storage, read> tile_ranges: array<u32>;        // [T,2]
@group(0) @binding(4) var<storage, read_write> image: array<f32>;        // [H,W,4]
@group(0) @binding(5) var<storage, read_write> final_index: array<u32>;  // [H,W]
#if SPLAT_DEPTHS
@group(0) @binding(6) var<storage, read> depths: array<f32>;             // [V+1] camera z
#endif
#if ACC_DEPTH
@group(0) @binding(7) var<storage, read_write> depth: array<f32>;        // [H,W]
#endif
#if MEDIAN_DEPTH
@group(0) @binding(8) var<storage, read_write> median_depth: array<f32>; // [H,W]
#endif

const PPT: u32 = {{PIXELS_PER_THREAD}}u;      // pixels per thread
const WG_SIZE: u32 = {{WG_SIZE}}u;            // = TILE_PIXELS / PPT
const ROWS_PER_STEP: u32 = WG_SIZE / TILE_SIZE;

var<workgroup> s_mean_opacity: array<vec4<f32>, TILE_PIXELS>; // x, y, opacity, -
var<workgroup> s_conic: array<vec4<f32>, TILE_PIXELS>;        // a, b, c, -
var<workgroup> s_color: array<vec4<f32>, TILE_PIXELS>;        // r, g, b, z (depth variants)
// "some pixel still blending" flags, alternating between batches so that resetting the
// next batch's flag never races with reads of the current one
var<workgroup> s_any_alive: array<u32, 2>;

@compute @workgroup_size({{WG_SIZE}}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tiles_x = params.image.z;
    let tile = wid.x + wid.y * tiles_x;
    let px = wid.x * TILE_SIZE + lid % TILE_SIZE;
    let pixel_x = f32(px) + 0.5;

    let start = tile_ranges[2u * tile];
    let end = tile_ranges[2u * tile + 1u];
    var pixel_y: array<f32, PPT>;
    var done: array<bool, PPT>;
    var T: array<f32, PPT>;
    var rgb: array<vec3<f32>, PPT>;
    var final_idx: array<u32, PPT>;
#if ACC_DEPTH
    var acc_depth: array<f32, PPT>;
#endif
#if MEDIAN_DEPTH
    var med_depth: array<f32, PPT>;
#endif
    var alive = 0u;   // pixels of this thread still blending
    for (var k = 0u; k < PPT; k++) {
        let py = wid.y * TILE_SIZE + lid / TILE_SIZE + k * ROWS_PER_STEP;
        pixel_y[k] = f32(py) + 0.5;
        done[k] = !(px < params.image.x && py < params.image.y);
        alive += select(1u, 0u, done[k]);
        T[k] = 1.0;
        rgb[k] = vec3<f32>(0.0);
        final_idx[k] = end;
#if ACC_DEPTH
        acc_depth[k] = 0.0;
#endif
#if MEDIAN_DEPTH
        med_depth[k] = 0.0;
#endif
    }

    let num_batches = (end - start + TILE_PIXELS - 1u) / TILE_PIXELS;
    if (lid == 0u) {
        s_any_alive[0] = 0u;
        s_any_alive[1] = 0u;
    }
    for (var b = 0u; b < num_batches; b++) {
        workgroupBarrier(); // previous batch consumed by every thread; flag b reset
        if (alive > 0u) {
            s_any_alive[b & 1u] = 1u;
        }
        if (lid == 0u) {
            s_any_alive[(b + 1u) & 1u] = 0u;
        }
        let batch_start = start + b * TILE_PIXELS;
        for (var slot = lid; slot < TILE_PIXELS; slot += WG_SIZE) {
            let idx = batch_start + slot;
            if (idx < end) {
                let c = compact_from_isect[idx];
                let o = c * PROJECTED_STRIDE;
                s_mean_opacity[slot] = vec4<f32>(projected[o], projected[o + 1u], projected[o + 8u], 0.0);
                s_conic[slot] = vec4<f32>(projected[o + 2u], projected[o + 3u], projected[o + 4u], 0.0);
#if SPLAT_DEPTHS
                s_color[slot] = vec4<f32>(projected[o + 5u], projected[o + 6u], projected[o + 7u], depths[c]);
#else
                s_color[slot] = vec4<f32>(projected[o + 5u], projected[o + 6u], projected[o + 7u], 0.0);
#endif
            }
        }
        if (workgroupUniformLoad(&s_any_alive[b & 1u]) == 0u) {
            break;
        }
        let batch_len = select(min(TILE_PIXELS, end - batch_start), 0u, alive == 0u);
        for (var j = 0u; j < batch_len; j++) {
            let mo = s_mean_opacity[j];
            let conic = s_conic[j];
            for (var k = 0u; k < PPT; k++) {
                if (done[k]) {
                    continue;
                }
                let d = mo.xy - vec2<f32>(pixel_x, pixel_y[k]);
                let sigma = 0.5 * (conic.x * d.x * d.x + conic.z * d.y * d.y) + conic.y * d.x * d.y;
                if (sigma < 0.0) {
                    continue;
                }
                let alpha = min(MAX_ALPHA, mo.z * exp(-sigma));
                if (alpha < ALPHA_THRESHOLD) {
                    continue;
                }
                let next_T = T[k] * (1.0 - alpha);
                if (next_T <= TRANSMITTANCE_STOP) {
                    done[k] = true;
                    alive -= 1u;
                    final_idx[k] = batch_start + j;
                    continue;
                }
                rgb[k] += (alpha * T[k]) * s_color[j].xyz;
#if ACC_DEPTH
                acc_depth[k] += (alpha * T[k]) * s_color[j].w;
#endif
#if MEDIAN_DEPTH
                if (T[k] >= 0.5 && next_T < 0.5) {
                    med_depth[k] = s_color[j].w;
                }
#endif
                T[k] = next_T;
            }
            if (alive == 0u) {
                break;
            }
        }
    }

    for (var k = 0u; k < PPT; k++) {
        let py = wid.y * TILE_SIZE + lid / TILE_SIZE + k * ROWS_PER_STEP;
        if (px < params.image.x && py < params.image.y) {
            let p = py * params.image.x + px;
            image[4u * p] = rgb[k].x + T[k] * params.background.x;
            image[4u * p + 1u] = rgb[k].y + T[k] * params.background.y;
            image[4u * p + 2u] = rgb[k].z + T[k] * params.background.z;
            image[4u * p + 3u] = 1.0 - T[k];
            final_index[p] = final_idx[k];
#if EXPECTED_DEPTH
            depth[p] = acc_depth[k] / max(1.0 - T[k], 1e-10);
#else
#if ACC_DEPTH
            depth[p] = acc_depth[k];
#endif
#endif
#if MEDIAN_DEPTH
            median_depth[p] = med_depth[k];
#endif
        }
    }
}
