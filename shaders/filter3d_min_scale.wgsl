// Mip-Splatting's 3D smoothing filter, stage 1: the per-splat scale floor
//   min_scale[i] = sqrt(factor) · min over training views v that see splat i of z_v / f_v
// with z_v the camera-space depth of the mean and f_v = (fx + fy) / 2 the focal length
// in pixels. A view sees the splat when z_v >= 0.01 (the renderer's near plane) and the
// projected mean lies within the image grown by 15% on every side (Mip-Splatting's
// frustum test). Splats no view sees get the largest floor of the seen ones (entry
// point `fill`, after `main`), as Mip-Splatting does.
//
// Entry points (same bindings):
//   main: min_scale[i] (or -1 when unseen); atomic max of the seen floors' bits into
//         max_bits[0] (positive floats order as u32; the buffer starts zeroed).
//   fill: min_scale[i] < 0 -> bitcast<f32>(max_bits[0]).
// Reference: tests/reference/filter3d.py (min_scale).
#include "common.wgsl"

// Params: brushpy/train/filter3d.py MIN_SCALE_PARAMS
#struct Params

// per camera, 20 floats: world_to_camera rows 0..2 (12), fx, fy, cx, cy, width, height, 0, 0
const CAM_STRIDE: u32 = 20u;
const NEAR_PLANE: f32 = 0.01;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> means: array<f32>;        // [N,3]
@group(0) @binding(2) var<storage, read> cameras: array<f32>;      // [V,20]
@group(0) @binding(3) var<storage, read_write> min_scale: array<f32>; // [N]
@group(0) @binding(4) var<storage, read_write> max_bits: array<atomic<u32>>; // [1]

const WG: u32 = 256u;
var<workgroup> wg_max: atomic<u32>;

@compute @workgroup_size(256)
fn main(inv: Thread) {
    if (inv.lid == 0u) {
        atomicStore(&wg_max, 0u);
    }
    workgroupBarrier();
    let i = thread_index(inv);
    if (i < params.num_splats) {
        let m = vec3<f32>(means[3u * i], means[3u * i + 1u], means[3u * i + 2u]);
        var best = -1.0;
        for (var v = 0u; v < params.num_cameras; v++) {
            let b = v * CAM_STRIDE;
            let x = cameras[b] * m.x + cameras[b + 1u] * m.y + cameras[b + 2u] * m.z + cameras[b + 3u];
            let y = cameras[b + 4u] * m.x + cameras[b + 5u] * m.y + cameras[b + 6u] * m.z + cameras[b + 7u];
            let z = cameras[b + 8u] * m.x + cameras[b + 9u] * m.y + cameras[b + 10u] * m.z + cameras[b + 11u];
            if (!(z >= NEAR_PLANE)) {
                continue;
            }
            let fx = cameras[b + 12u];
            let fy = cameras[b + 13u];
            let w = cameras[b + 16u];
            let h = cameras[b + 17u];
            let u = fx * x / z + cameras[b + 14u];
            let vv = fy * y / z + cameras[b + 15u];
            if (!(u >= -0.15 * w && u <= 1.15 * w && vv >= -0.15 * h && vv <= 1.15 * h)) {
                continue;
            }
            let r = z / (0.5 * (fx + fy));
            if (best < 0.0 || r < best) {
                best = r;
            }
        }
        var out = -1.0;
        if (best >= 0.0) {
            out = best * params.factor_sqrt;
            atomicMax(&wg_max, bitcast<u32>(out));
        }
        min_scale[i] = out;
    }
    workgroupBarrier();
    if (inv.lid == 0u) {
        let mx = atomicLoad(&wg_max);
        if (mx > 0u) {
            atomicMax(&max_bits[0], mx);
        }
    }
}

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_workgroup_id(wid, nwg) * WG + lid;
    if (i < params.num_splats && min_scale[i] < 0.0) {
        min_scale[i] = bitcast<f32>(atomicLoad(&max_bits[0]));
    }
}
