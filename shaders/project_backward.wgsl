// Project backward: gradients of the splat parameters from v_projected.
//
// One thread per visible splat (compact index). Recomputes the projection
// of its splat in float32 and chains
//   conic -> 2D covariance -> (J, camera-space 3D covariance) -> log_scales, quaternion
//   (through its normalisation), 2D mean and J -> mean (with the clamped x/z, y/z
//   of J handled exactly as the forward clamps), clamped SH colour -> sh_coeffs and,
//   unless view_dir_const, -> mean through the view direction, opacity -> logit.
// Writes at the splat's global id; outputs must be zeroed beforehand (culled
// splats keep exact zeros). Also writes the refine statistics at global ids:
// |(dL/dx * W, dL/dy * H)|, Brush's per-pixel |.|_1 / alpha statistic
// (refine_abs, from rasterize backward) and a visibility flag.
//
// Mip render mode (size.z = 1): the filter is 0.1 I and the projected opacity is
// o·comp, comp = sqrt(det Σ / det Σb), Σb = Σ + 0.1 I; v_opacity (w.r.t. o·comp)
// then flows to the logit through comp·o(1-o) and to the 2D covariance through
//   ∂comp/∂Σ = ((1 - comp²) Σb⁻¹ - 0.1 I / det Σb) / (2 comp)
// (gsplat's add_blur_vjp, exact here: visible splats have comp >= 1/255).
//
// Maths: tests/reference/render_backward.py (project_vjp).

#include "common.wgsl"
#include "quat.wgsl"
#include "render_common.wgsl"
#include "sh.wgsl"

// declared once in brushpy/render/backward.py (PROJECT_BACKWARD_PARAMS)
#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> means: array<f32>;
@group(0) @binding(2) var<storage, read> rotations: array<f32>;
@group(0) @binding(3) var<storage, read> log_scales: array<f32>;
@group(0) @binding(4) var<storage, read> sh_coeffs: array<f32>;
@group(0) @binding(5) var<storage, read> raw_opacities: array<f32>;
@group(0) @binding(6) var<storage, read> global_from_compact: array<u32>;
@group(0) @binding(7) var<storage, read> v_projected: array<f32>;
@group(0) @binding(8) var<storage, read_write> v_means: array<f32>;
@group(0) @binding(9) var<storage, read_write> v_rotations: array<f32>;
@group(0) @binding(10) var<storage, read_write> v_log_scales: array<f32>;
@group(0) @binding(11) var<storage, read_write> v_sh_coeffs: array<f32>;
@group(0) @binding(12) var<storage, read_write> v_raw_opacities: array<f32>;
@group(0) @binding(13) var<storage, read_write> refine_weight: array<f32>;
@group(0) @binding(14) var<storage, read_write> visible: array<u32>;
@group(0) @binding(15) var<storage, read> refine_abs: array<f32>;              // [V] compact
@group(0) @binding(16) var<storage, read_write> refine_weight_abs: array<f32>; // [N] global
#if ACC_DEPTH
@group(0) @binding(17) var<storage, read> v_depths: array<f32>;                 // [V] compact: ∂L/∂z
#endif

const WG: u32 = 128u;
// LOW_PASS, LOW_PASS_MIP: render_common.wgsl; the SH basis constants SH_C*: sh.wgsl
// (Sloan / gsplat signs; tests/reference/render.py). Only the tangential part of each
// polynomial's gradient matters in sh_term: it is projected by (I - d d^T) /
// |mean - camera| below, so forms that agree on the unit sphere (e.g. 2z^2 - x^2 - y^2
// vs 3z^2 - 1) give the same mean gradient.

// One real SH basis function (Sloan / gsplat signs) as a polynomial in
// (x, y, z), index i in 0..24: (value, d/dx, d/dy, d/dz).
fn sh_term(i: u32, d: vec3<f32>) -> vec4<f32> {
    let x = d.x;
    let y = d.y;
    let z = d.z;
    let xx = x * x;
    let yy = y * y;
    let zz = z * z;
    switch i {
        case 0u: {
            return vec4<f32>(SH_C0, vec3<f32>(0.0));
        }
        case 1u: {
            return vec4<f32>(-SH_C1 * y, vec3<f32>(0.0, -SH_C1, 0.0));
        }
        case 2u: {
            return vec4<f32>(SH_C1 * z, vec3<f32>(0.0, 0.0, SH_C1));
        }
        case 3u: {
            return vec4<f32>(-SH_C1 * x, vec3<f32>(-SH_C1, 0.0, 0.0));
        }
        case 4u: {
            return vec4<f32>(SH_C2_0 * x * y, SH_C2_0 * vec3<f32>(y, x, 0.0));
        }
        case 5u: {
            return vec4<f32>(-SH_C2_0 * y * z, -SH_C2_0 * vec3<f32>(0.0, z, y));
        }
        case 6u: {
            return vec4<f32>(SH_C2_2 * (2.0 * zz - xx - yy), SH_C2_2 * vec3<f32>(-2.0 * x, -2.0 * y, 4.0 * z));
        }
        case 7u: {
            return vec4<f32>(-SH_C2_0 * x * z, -SH_C2_0 * vec3<f32>(z, 0.0, x));
        }
        case 8u: {
            return vec4<f32>(SH_C2_4 * (xx - yy), SH_C2_4 * vec3<f32>(2.0 * x, -2.0 * y, 0.0));
        }
        case 9u: {
            return vec4<f32>(SH_C3_0 * y * (3.0 * xx - yy), SH_C3_0 * vec3<f32>(6.0 * x * y, 3.0 * xx - 3.0 * yy, 0.0));
        }
        case 10u: {
            return vec4<f32>(SH_C3_1 * x * y * z, SH_C3_1 * vec3<f32>(y * z, x * z, x * y));
        }
        case 11u: {
            return vec4<f32>(SH_C3_2 * y * (4.0 * zz - xx - yy), SH_C3_2 * vec3<f32>(-2.0 * x * y, 4.0 * zz - xx - 3.0 * yy, 8.0 * y * z));
        }
        case 12u: {
            return vec4<f32>(SH_C3_3 * z * (2.0 * zz - 3.0 * xx - 3.0 * yy), SH_C3_3 * vec3<f32>(-6.0 * x * z, -6.0 * y * z, 6.0 * zz - 3.0 * xx - 3.0 * yy));
        }
        case 13u: {
            return vec4<f32>(SH_C3_2 * x * (4.0 * zz - xx - yy), SH_C3_2 * vec3<f32>(4.0 * zz - 3.0 * xx - yy, -2.0 * x * y, 8.0 * x * z));
        }
        case 14u: {
            return vec4<f32>(SH_C3_5 * z * (xx - yy), SH_C3_5 * vec3<f32>(2.0 * x * z, -2.0 * y * z, xx - yy));
        }
        case 15u: {
            return vec4<f32>(SH_C3_0 * x * (xx - 3.0 * yy), SH_C3_0 * vec3<f32>(3.0 * xx - 3.0 * yy, -6.0 * x * y, 0.0));
        }
        case 16u: {
            return vec4<f32>(SH_C4_0 * x * y * (xx - yy), SH_C4_0 * vec3<f32>(3.0 * xx * y - yy * y, xx * x - 3.0 * x * yy, 0.0));
        }
        case 17u: {
            return vec4<f32>(SH_C4_1 * y * z * (3.0 * xx - yy), SH_C4_1 * vec3<f32>(6.0 * x * y * z, 3.0 * (xx - yy) * z, 3.0 * xx * y - yy * y));
        }
        case 18u: {
            return vec4<f32>(SH_C4_2 * x * y * (7.0 * zz - 1.0), SH_C4_2 * vec3<f32>(y * (7.0 * zz - 1.0), x * (7.0 * zz - 1.0), 14.0 * x * y * z));
        }
        case 19u: {
            return vec4<f32>(SH_C4_3 * y * z * (7.0 * zz - 3.0), SH_C4_3 * vec3<f32>(0.0, z * (7.0 * zz - 3.0), y * (21.0 * zz - 3.0)));
        }
        case 20u: {
            return vec4<f32>(SH_C4_4 * (zz * (35.0 * zz - 30.0) + 3.0), SH_C4_4 * vec3<f32>(0.0, 0.0, 140.0 * zz * z - 60.0 * z));
        }
        case 21u: {
            return vec4<f32>(SH_C4_3 * x * z * (7.0 * zz - 3.0), SH_C4_3 * vec3<f32>(z * (7.0 * zz - 3.0), 0.0, x * (21.0 * zz - 3.0)));
        }
        case 22u: {
            return vec4<f32>(SH_C4_6 * (xx - yy) * (7.0 * zz - 1.0), SH_C4_6 * vec3<f32>(2.0 * x * (7.0 * zz - 1.0), -2.0 * y * (7.0 * zz - 1.0), 14.0 * z * (xx - yy)));
        }
        case 23u: {
            return vec4<f32>(SH_C4_1 * x * z * (xx - 3.0 * yy), SH_C4_1 * vec3<f32>(3.0 * (xx - yy) * z, -6.0 * x * y * z, xx * x - 3.0 * x * yy));
        }
        case 24u: {
            return vec4<f32>(SH_C4_8 * (xx * (xx - 3.0 * yy) - yy * (3.0 * xx - yy)), SH_C4_8 * vec3<f32>(4.0 * xx * x - 12.0 * x * yy, 4.0 * yy * y - 12.0 * xx * y, 0.0));
        }
        default: {
            return vec4<f32>(0.0);
        }
    }
}


// d<G, R(q)>/dq for a unit quaternion q (w, x, y, z); G[c][r] is dL/dR[r][c].
fn quat_to_mat_vjp(q: vec4<f32>, G: mat3x3<f32>) -> vec4<f32> {
    let w = q.x;
    let x = q.y;
    let y = q.z;
    let z = q.w;
    // g_rc = dL/dR[r][c]
    let g00 = G[0][0];
    let g10 = G[0][1];
    let g20 = G[0][2];
    let g01 = G[1][0];
    let g11 = G[1][1];
    let g21 = G[1][2];
    let g02 = G[2][0];
    let g12 = G[2][1];
    let g22 = G[2][2];
    return 2.0 * vec4<f32>(
        x * (g21 - g12) + y * (g02 - g20) + z * (g10 - g01),
        -2.0 * x * (g11 + g22) + y * (g01 + g10) + z * (g02 + g20) + w * (g21 - g12),
        x * (g01 + g10) - 2.0 * y * (g00 + g22) + z * (g12 + g21) + w * (g02 - g20),
        x * (g02 + g20) + y * (g12 + g21) - 2.0 * z * (g00 + g11) + w * (g10 - g01),
    );
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let cid = linear_workgroup_id(wid, nwg) * WG + lid;
    if cid >= params.num_visible {
        return;
    }
    let gid = global_from_compact[cid];
    let fx = params.intrinsics.x;
    let fy = params.intrinsics.y;
    let cx = params.intrinsics.z;
    let cy = params.intrinsics.w;
    let width = params.size.x;
    let height = params.size.y;

    let vb = cid * 9u;
    let v_xy = vec2<f32>(v_projected[vb], v_projected[vb + 1u]);
    let v_conic = vec3<f32>(v_projected[vb + 2u], v_projected[vb + 3u], v_projected[vb + 4u]);
    let v_color = vec3<f32>(v_projected[vb + 5u], v_projected[vb + 6u], v_projected[vb + 7u]);
    let v_opacity = v_projected[vb + 8u];

    let mean = vec3<f32>(means[3u * gid], means[3u * gid + 1u], means[3u * gid + 2u]);
    let q_raw = vec4<f32>(rotations[4u * gid], rotations[4u * gid + 1u], rotations[4u * gid + 2u], rotations[4u * gid + 3u]);
    let s = exp(vec3<f32>(log_scales[3u * gid], log_scales[3u * gid + 1u], log_scales[3u * gid + 2u]));

    // opacity logit (in mip mode scaled by the compensation, computed below)
    let o = 1.0 / (1.0 + exp(-raw_opacities[gid]));

    // SH colour -> coefficients, and -> view direction
    let k = params.num_coeffs;
    let dvec = mean - params.cam_pos.xyz;
    let dlen = max(length(dvec), 1e-12);
    let dir = dvec / dlen;
    var raw_color = vec3<f32>(0.5);
    for (var i = 0u; i < k; i++) {
        let b = (gid * params.coeff_stride + i) * 3u;
        raw_color += sh_term(i, dir).x * vec3<f32>(sh_coeffs[b], sh_coeffs[b + 1u], sh_coeffs[b + 2u]);
    }
    let v_raw_color = select(vec3<f32>(0.0), v_color, raw_color >= vec3<f32>(0.0));
    var v_dir = vec3<f32>(0.0);
    for (var i = 0u; i < k; i++) {
        let b = (gid * params.coeff_stride + i) * 3u;
        let c = vec3<f32>(sh_coeffs[b], sh_coeffs[b + 1u], sh_coeffs[b + 2u]);
        let term = sh_term(i, dir);
        let v_c = term.x * v_raw_color;
        v_sh_coeffs[b] = v_c.x;
        v_sh_coeffs[b + 1u] = v_c.y;
        v_sh_coeffs[b + 2u] = v_c.z;
        v_dir += dot(c, v_raw_color) * term.yzw;
    }
    var v_mean = vec3<f32>(0.0);
    if params.view_dir_const == 0u {
        v_mean += (v_dir - dir * dot(dir, v_dir)) / dlen;
    }

    // camera space
    let W = params.world_to_camera;
    let R = mat3x3<f32>(W[0].xyz, W[1].xyz, W[2].xyz);
    let p = R * mean + W[3].xyz;
    let z = p.z;
    let rz = 1.0 / z;
    let rz2 = rz * rz;
    let rz3 = rz2 * rz;

    // 2D mean
    var v_p = vec3<f32>(fx * rz * v_xy.x, fy * rz * v_xy.y, -(fx * p.x * v_xy.x + fy * p.y * v_xy.y) * rz2);
#if ACC_DEPTH
    v_p.z += v_depths[cid];   // rendered depth: z = (R mean + t).z
#endif

    // 3D covariance
    let q_len = max(length(q_raw), 1e-12);
    let q = q_raw / q_len;
    let rot = quat_to_mat(q);
    let M = mat3x3<f32>(rot[0] * s.x, rot[1] * s.y, rot[2] * s.z);
    let sigma3 = M * transpose(M);

    // J with the clamped x/z, y/z, exactly as the forward
    let lim_x_pos = (1.15 * width - cx) / fx;
    let lim_x_neg = (-0.15 * width - cx) / fx;
    let lim_y_pos = (1.15 * height - cy) / fy;
    let lim_y_neg = (-0.15 * height - cy) / fy;
    let ux = p.x * rz;
    let uy = p.y * rz;
    let clip_x = ux < lim_x_neg || ux > lim_x_pos;
    let clip_y = uy < lim_y_neg || uy > lim_y_pos;
    let tx = z * clamp(ux, lim_x_neg, lim_x_pos);
    let ty = z * clamp(uy, lim_y_neg, lim_y_pos);
    let J = mat3x2<f32>(vec2<f32>(fx * rz, 0.0), vec2<f32>(0.0, fy * rz), vec2<f32>(-fx * tx * rz2, -fy * ty * rz2));
    let T = J * R;
    var cov = T * sigma3 * transpose(T);
    let mip = params.size.z != 0.0;
    let low_pass = select(LOW_PASS, LOW_PASS_MIP, mip);
    let det_raw = cov[0][0] * cov[1][1] - cov[0][1] * cov[0][1];
    cov[0][0] += low_pass;
    cov[1][1] += low_pass;
    let det = cov[0][0] * cov[1][1] - cov[0][1] * cov[0][1];
    let P = mat2x2<f32>(vec2<f32>(cov[1][1], -cov[0][1]), vec2<f32>(-cov[0][1], cov[0][0])) * (1.0 / det);
    let G = mat2x2<f32>(vec2<f32>(v_conic.x, 0.5 * v_conic.y), vec2<f32>(0.5 * v_conic.y, v_conic.z));
    let PGP = P * G * P;
    var v_cov = mat2x2<f32>(-PGP[0], -PGP[1]);
    if mip {
        let comp = sqrt(max(det_raw, 0.0) / det);
        v_raw_opacities[gid] = v_opacity * comp * o * (1.0 - o);
        let v_comp = v_opacity * o;
        if comp > 0.0 {
            let k_comp = v_comp / (2.0 * comp);
            let d_diag = low_pass / det;
            let one_minus = 1.0 - comp * comp;
            v_cov[0][0] += k_comp * (one_minus * P[0][0] - d_diag);
            v_cov[0][1] += k_comp * one_minus * P[0][1];
            v_cov[1][0] += k_comp * one_minus * P[1][0];
            v_cov[1][1] += k_comp * (one_minus * P[1][1] - d_diag);
        }
    } else {
        v_raw_opacities[gid] = v_opacity * o * (1.0 - o);
    }

    // 2D covariance -> J and the world-space 3D covariance
    let v_T = 2.0 * (v_cov * T * sigma3);
    let v_J = v_T * transpose(R);
    let v_sigma3 = transpose(T) * v_cov * T;
    v_p.z += -fx * rz2 * v_J[0][0] - fy * rz2 * v_J[1][1];
    if clip_x {
        v_p.z += fx * tx * rz3 * v_J[2][0];
    } else {
        v_p.x += -fx * rz2 * v_J[2][0];
        v_p.z += 2.0 * fx * tx * rz3 * v_J[2][0];
    }
    if clip_y {
        v_p.z += fy * ty * rz3 * v_J[2][1];
    } else {
        v_p.y += -fy * rz2 * v_J[2][1];
        v_p.z += 2.0 * fy * ty * rz3 * v_J[2][1];
    }
    v_mean += transpose(R) * v_p;

    // 3D covariance -> log scales and quaternion
    let v_M = 2.0 * (v_sigma3 * M);
    let v_s = vec3<f32>(dot(rot[0], v_M[0]), dot(rot[1], v_M[1]), dot(rot[2], v_M[2]));
    let v_log_s = v_s * s;
    let v_rot = mat3x3<f32>(v_M[0] * s.x, v_M[1] * s.y, v_M[2] * s.z);
    let v_qn = quat_to_mat_vjp(q, v_rot);
    let v_q = (v_qn - q * dot(q, v_qn)) / q_len;

    v_means[3u * gid] = v_mean.x;
    v_means[3u * gid + 1u] = v_mean.y;
    v_means[3u * gid + 2u] = v_mean.z;
    v_rotations[4u * gid] = v_q.x;
    v_rotations[4u * gid + 1u] = v_q.y;
    v_rotations[4u * gid + 2u] = v_q.z;
    v_rotations[4u * gid + 3u] = v_q.w;
    v_log_scales[3u * gid] = v_log_s.x;
    v_log_scales[3u * gid + 1u] = v_log_s.y;
    v_log_scales[3u * gid + 2u] = v_log_s.z;
    refine_weight[gid] = length(v_xy * vec2<f32>(width, height));
    visible[gid] = 1u;
    refine_weight_abs[gid] = refine_abs[cid];
}
