// Forward stage 1: project every splat, cull, count the 16x16 tiles it touches.
//
// Per splat i < N writes
//   aux[i*8 .. i*8+8] = x, y, conic a, b, c, extent x, extent y, opacity   (visible splats)
//   tile_counts[i]    = tiles whose pixel centres the 1/255 ellipse reaches (0 if culled)
//   visible[i]        = 1 if the splat is kept, else 0
//   depth_keys[i]     = bit pattern of the camera depth z (> 0, so it sorts as u32)
// and adds the kept splats and their tiles to counters[0] and counters[1]; counters[2]
// = max of ~depth_key and counters[3] = max of depth_key over kept splats (so
// ~counters[2] is the smallest key; the buffer starts zeroed).
//
// Render mode (params.counts2.z): 0 = default (2D filter 0.3), 1 = mip (filter 0.1,
// opacity times sqrt(det Σ2D / det(Σ2D + 0.1 I)); aux holds the compensated opacity).
//
// Culled: any non-finite input (mean, rotation, log-scale, opacity logit or a used
// SH coefficient), z < 0.01, opacity < 1/255 (compensated in mip mode), 2D determinant <= 0, non-finite 2D
// quantities, or no tile reached (off screen).
#include "common.wgsl"
#include "render_common.wgsl"

@group(0) @binding(0) var<uniform> params: RenderParams;
@group(0) @binding(1) var<storage, read> means: array<f32>;          // [N,3]
@group(0) @binding(2) var<storage, read> rotations: array<f32>;      // [N,4] w,x,y,z
@group(0) @binding(3) var<storage, read> log_scales: array<f32>;     // [N,3]
@group(0) @binding(4) var<storage, read> sh_coeffs: array<f32>;      // [N,K,3]
@group(0) @binding(5) var<storage, read> raw_opacities: array<f32>;  // [N]
@group(0) @binding(6) var<storage, read_write> aux: array<f32>;      // [N,8]
@group(0) @binding(7) var<storage, read_write> tile_counts: array<u32>; // [N]
@group(0) @binding(8) var<storage, read_write> visible: array<u32>;  // [N]
@group(0) @binding(9) var<storage, read_write> depth_keys: array<u32>; // [N]
@group(0) @binding(10) var<storage, read_write> counters: array<atomic<u32>>; // [4]

var<workgroup> wg_visible: atomic<u32>;
var<workgroup> wg_tiles: atomic<u32>;
var<workgroup> wg_min_key_inv: atomic<u32>;
var<workgroup> wg_max_key: atomic<u32>;

fn count_tiles(i: u32) -> u32 {
    let mean = vec3<f32>(means[3u * i], means[3u * i + 1u], means[3u * i + 2u]);
    let quat = vec4<f32>(rotations[4u * i], rotations[4u * i + 1u], rotations[4u * i + 2u], rotations[4u * i + 3u]);
    let log_scale = vec3<f32>(log_scales[3u * i], log_scales[3u * i + 1u], log_scales[3u * i + 2u]);
    let raw_opacity = raw_opacities[i];
    if (!all_finite3(mean) || !all_finite3(quat.xyz) || !is_finite_f32(quat.w) || !all_finite3(log_scale) || !is_finite_f32(raw_opacity)) {
        return 0u;
    }
    let base_opacity = sigmoid(raw_opacity);
    if (base_opacity < ALPHA_THRESHOLD) {
        return 0u;
    }
    let p_cam = camera_rotation(params) * mean + camera_translation(params);
    if (!(p_cam.z >= NEAR_PLANE)) {
        return 0u;
    }
    // SH coefficients used for the colour must be finite
    let k_used = (params.counts.y + 1u) * (params.counts.y + 1u);
    let sh_base = i * params.counts.z * 3u;
    for (var k = 0u; k < 3u * k_used; k++) {
        if (!is_finite_f32(sh_coeffs[sh_base + k])) {
            return 0u;
        }
    }

    let rot = quat_to_rotmat(quat);
    let s = exp(log_scale);
    let m = rot * mat3x3<f32>(vec3<f32>(s.x, 0.0, 0.0), vec3<f32>(0.0, s.y, 0.0), vec3<f32>(0.0, 0.0, s.z));
    let cov3d = m * transpose(m);
    let cov = project_covariance(params, p_cam, cov3d);
    let mip = params.counts2.z != 0u;
    let low_pass = select(LOW_PASS, LOW_PASS_MIP, mip);
    let c11 = cov[0][0] + low_pass;
    let c12 = cov[0][1];
    let c22 = cov[1][1] + low_pass;
    let det = c11 * c22 - c12 * c12;
    if (!(det > 0.0) || !is_finite_f32(det)) {
        return 0u;
    }
    var opacity = base_opacity;
    if (mip) {
        // Mip-Splatting's compensation sqrt(det Σ / det(Σ + 0.1 I)); the cull and the
        // extent below use the compensated opacity (gsplat "antialiased")
        let det_raw = cov[0][0] * cov[1][1] - c12 * c12;
        opacity = base_opacity * sqrt(max(det_raw, 0.0) / det);
        if (!(opacity >= ALPHA_THRESHOLD)) {
            return 0u;
        }
    }
    let conic = vec3<f32>(c22 / det, -c12 / det, c11 / det);
    let rz = 1.0 / p_cam.z;
    let xy = vec2<f32>(params.intrin.x * p_cam.x * rz + params.intrin.z, params.intrin.y * p_cam.y * rz + params.intrin.w);
    let power = opacity_power(opacity);
    let extent = sqrt(max(power, 0.0) * vec2<f32>(c11, c22));
    if (!all_finite3(conic) || !is_finite_f32(xy.x) || !is_finite_f32(xy.y) || !is_finite_f32(extent.x) || !is_finite_f32(extent.y)) {
        return 0u;
    }
    // off screen: the 1/255 box misses the image (as the reference), then per-tile ellipse test
    let w = f32(params.image.x);
    let h = f32(params.image.y);
    if (!(xy.x + extent.x > 0.0 && xy.x - extent.x < w && xy.y + extent.y > 0.0 && xy.y - extent.y < h)) {
        return 0u;
    }
    let bbox = tile_bbox(params, xy, extent);
    var n = 0u;
    for (var ty = bbox.y; ty < bbox.w; ty++) {
        for (var tx = bbox.x; tx < bbox.z; tx++) {
            if (tile_hit(params, xy, conic, power, tx, ty)) {
                n++;
            }
        }
    }
    if (n == 0u) {
        return 0u;
    }
    let base = i * AUX_STRIDE;
    aux[base] = xy.x;
    aux[base + 1u] = xy.y;
    aux[base + 2u] = conic.x;
    aux[base + 3u] = conic.y;
    aux[base + 4u] = conic.z;
    aux[base + 5u] = extent.x;
    aux[base + 6u] = extent.y;
    aux[base + 7u] = opacity;
    depth_keys[i] = bitcast<u32>(p_cam.z);
    return n;
}

@compute @workgroup_size(256)
fn main(inv: Thread) {
    if (inv.lid == 0u) {
        atomicStore(&wg_visible, 0u);
        atomicStore(&wg_tiles, 0u);
        atomicStore(&wg_min_key_inv, 0u);
        atomicStore(&wg_max_key, 0u);
    }
    workgroupBarrier();
    let i = thread_index(inv);
    if (i < params.counts.x) {
        let n = count_tiles(i);
        tile_counts[i] = n;
        visible[i] = select(0u, 1u, n > 0u);
        if (n > 0u) {
            atomicAdd(&wg_visible, 1u);
            atomicAdd(&wg_tiles, n);
            let key = depth_keys[i];
            atomicMax(&wg_min_key_inv, ~key);
            atomicMax(&wg_max_key, key);
        }
    }
    workgroupBarrier();
    if (inv.lid == 0u) {
        let v = atomicLoad(&wg_visible);
        if (v > 0u) {
            atomicAdd(&counters[0], v);
            atomicAdd(&counters[1], atomicLoad(&wg_tiles));
            atomicMax(&counters[2], atomicLoad(&wg_min_key_inv));
            atomicMax(&counters[3], atomicLoad(&wg_max_key));
        }
    }
}
