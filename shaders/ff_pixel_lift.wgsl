// Pixel-aligned Gaussians from a predicted inverse depth and a Gaussian head
// (brushpy/feedforward/lift.py; reference: lift_reference / lift_vjp_reference there).
// One thread per pixel p = y * W + x of one view; splat n = offset + p.
//   inv_t = inv[p] + dinv * head[0, p];  z = 1 / max(inv_t, inv_floor)
//   ray = ((x + .5 - cx) / fx, (y + .5 - cy) / fy, 1);  mean = c2w_rot * (z ray) + centre
//   raw_opacity = head[1];  log_scale_k = log(z * sigma0) + SCALE_RANGE * tanh(head[2 + k])
//   rotation = (1 + head[5], head[6], head[7], head[8]);  sh_c = (rgb_c - 0.5) / C0 + head[9 + c]
// backward: the gradients of inv [P] and head [12, P] from those of the five splat tensors.

#include "common.wgsl"

// LiftParams: brushpy/feedforward/lift.py LIFT_PARAMS
#struct LiftParams

@group(0) @binding(0) var<uniform> params: LiftParams;
@group(0) @binding(1) var<storage, read> inv_depth: array<f32>;   // [P]
@group(0) @binding(2) var<storage, read> head: array<f32>;        // [12, P]
@group(0) @binding(3) var<storage, read> rgb: array<f32>;         // [3, P]
#if BACKWARD
@group(0) @binding(4) var<storage, read> g_means: array<f32>;     // [N, 3]
@group(0) @binding(5) var<storage, read> g_rot: array<f32>;       // [N, 4]
@group(0) @binding(6) var<storage, read> g_scales: array<f32>;    // [N, 3]
@group(0) @binding(7) var<storage, read> g_sh: array<f32>;        // [N, 1, 3]
@group(0) @binding(8) var<storage, read> g_opac: array<f32>;      // [N]
@group(0) @binding(9) var<storage, read_write> grad_inv: array<f32>;   // [P]
@group(0) @binding(10) var<storage, read_write> grad_head: array<f32>; // [12, P]
#else
@group(0) @binding(4) var<storage, read_write> means: array<f32>;
@group(0) @binding(5) var<storage, read_write> rotations: array<f32>;
@group(0) @binding(6) var<storage, read_write> log_scales: array<f32>;
@group(0) @binding(7) var<storage, read_write> sh: array<f32>;
@group(0) @binding(8) var<storage, read_write> raw_opacities: array<f32>;
#endif

const SH_C0: f32 = 0.28209479177387814;

fn tanh_safe(u: f32) -> f32 {
    let e = exp(-2.0 * abs(u));
    return sign(u) * (1.0 - e) / (1.0 + e);
}

fn ray_world(p: u32) -> vec3<f32> {
    let x = f32(p % params.width) + 0.5;
    let y = f32(p / params.width) + 0.5;
    let r = vec3<f32>((x - params.intr.z) / params.intr.x, (y - params.intr.w) / params.intr.y, 1.0);
    return vec3<f32>(dot(params.r0.xyz, r), dot(params.r1.xyz, r), dot(params.r2.xyz, r));
}

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let p = thread_index(inv);
    if (p >= params.pixels) {
        return;
    }
    let np = params.pixels;
    let inv_t = inv_depth[p] + params.dinv * head[p];
    let inv_c = max(inv_t, params.inv_floor);
    let z = 1.0 / inv_c;
    let ray = ray_world(p);
    let n = params.offset + p;
#if BACKWARD
    var dz = 0.0;
    for (var k = 0u; k < 3u; k = k + 1u) {
        dz = dz + g_means[3u * n + k] * ray[k];
        let gs = g_scales[3u * n + k];
        dz = dz + gs / z;
        let t = tanh_safe(head[(2u + k) * np + p]);
        grad_head[(2u + k) * np + p] = gs * params.scale_range * (1.0 - t * t);
        grad_head[(9u + k) * np + p] = g_sh[3u * n + k];
    }
    for (var k = 0u; k < 4u; k = k + 1u) {
        grad_head[(5u + k) * np + p] = g_rot[4u * n + k];
    }
    grad_head[np + p] = g_opac[n];
    let g_inv = select(0.0, -dz * z * z, inv_t >= params.inv_floor);
    grad_inv[p] = g_inv;
    grad_head[p] = g_inv * params.dinv;
#else
    let m = params.centre.xyz + z * ray;
    let ls = log(z * params.sigma0);
    for (var k = 0u; k < 3u; k = k + 1u) {
        means[3u * n + k] = m[k];
        log_scales[3u * n + k] = ls + params.scale_range * tanh_safe(head[(2u + k) * np + p]);
        sh[3u * n + k] = (rgb[k * np + p] - 0.5) / SH_C0 + head[(9u + k) * np + p];
    }
    rotations[4u * n] = 1.0 + head[5u * np + p];
    for (var k = 1u; k < 4u; k = k + 1u) {
        rotations[4u * n + k] = head[(5u + k) * np + p];
    }
    raw_opacities[n] = head[np + p];
#endif
}
