// MIP projection, backward: one thread per Gaussian. Turns the gradients of
// (mean2d, conic, log_a) in v_proj [K,6] into gradients of means, log_scales,
// rotations and log_amplitudes, ADDED to the gradient buffers (views
// accumulate). Culled Gaussians (same tests as mip_project.wgsl) add nothing.
// Maths: tests/reference/mip.py (project_vjp).

#include "common.wgsl"
#include "mip_common.wgsl"

@group(0) @binding(0) var<storage, read> view: View;
@group(0) @binding(1) var<storage, read> means: array<f32>;
@group(0) @binding(2) var<storage, read> log_scales: array<f32>;
@group(0) @binding(3) var<storage, read> rotations: array<f32>;
@group(0) @binding(4) var<storage, read> log_amplitudes: array<f32>;
@group(0) @binding(5) var<storage, read> v_proj: array<f32>;
@group(0) @binding(6) var<storage, read_write> v_means: array<f32>;
@group(0) @binding(7) var<storage, read_write> v_log_scales: array<f32>;
@group(0) @binding(8) var<storage, read_write> v_rotations: array<f32>;
@group(0) @binding(9) var<storage, read_write> v_log_amplitudes: array<f32>;

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let g = thread_index(inv);
    if g >= view.num_gaussians {
        return;
    }
    let vb = VPROJ_STRIDE * g;
    let v_xy = vec2<f32>(v_proj[vb], v_proj[vb + 1u]);
    let v_con = vec3<f32>(v_proj[vb + 2u], v_proj[vb + 3u], v_proj[vb + 4u]);
    let v_la = v_proj[vb + 5u];
    if all(v_xy == vec2<f32>(0.0)) && all(v_con == vec3<f32>(0.0)) && v_la == 0.0 {
        return;
    }
    let u = vec3<f32>(means[3u * g], means[3u * g + 1u], means[3u * g + 2u]);
    let ls = vec3<f32>(log_scales[3u * g], log_scales[3u * g + 1u], log_scales[3u * g + 2u]);
    let q_raw = vec4<f32>(rotations[4u * g], rotations[4u * g + 1u], rotations[4u * g + 2u], rotations[4u * g + 3u]);
    let qn = length(q_raw);
    let M = view_matrix(view);
    let c = M * u + view_translation(view);
    let n = q_raw / qn;
    let R = quat_to_mat(n);
    let s = exp(ls);
    let L = scaled_rotation(R, s);
    let sig3 = L * transpose(L);
    let J = projection_jacobian(view, c);
    let sig_c = M * sig3 * transpose(M);
    let sig2 = J * sig_c * transpose(J);
    let cov = blurred_cov2d(view, sig2);
    if !(cov.w > 0.0) {
        return;
    }
    // conic Q = Σ2⁻¹; dL/dΣ2 = -Q G Q, G the symmetric gradient of Q
    let con = cov2d_conic(cov);
    let Q = mat2x2<f32>(vec2<f32>(con.x, con.y), vec2<f32>(con.y, con.z));
    let G = mat2x2<f32>(vec2<f32>(v_con.x, 0.5 * v_con.y), vec2<f32>(0.5 * v_con.y, v_con.z));
    let v_sig2 = -1.0 * (Q * G * Q);
    let v_sigc = transpose(J) * v_sig2 * J;
    var v_c = vec3<f32>(0.0);
    let fx = view.intr.x;
    let fy = view.intr.y;
    if view.orthographic != 0u {
        v_c = vec3<f32>(fx * v_xy.x, fy * v_xy.y, 0.0);
    } else {
        let v_J = 2.0 * (v_sig2 * J * sig_c);
        let iz = 1.0 / c.z;
        let iz2 = iz * iz;
        let iz3 = iz2 * iz;
        v_c.x = v_xy.x * fx * iz - v_J[2][0] * fx * iz2;
        v_c.y = v_xy.y * fy * iz - v_J[2][1] * fy * iz2;
        v_c.z = -v_xy.x * fx * c.x * iz2 - v_xy.y * fy * c.y * iz2
              - v_J[0][0] * fx * iz2 + v_J[2][0] * 2.0 * fx * c.x * iz3
              - v_J[1][1] * fy * iz2 + v_J[2][1] * 2.0 * fy * c.y * iz3;
    }
    let v_u = transpose(M) * v_c;
    let v_sig3 = transpose(M) * v_sigc * M;
    let v_L = 2.0 * (v_sig3 * L);
    let v_s = vec3<f32>(dot(v_L[0], R[0]), dot(v_L[1], R[1]), dot(v_L[2], R[2]));
    let v_ls = v_s * s;
    // gR(row, col) = v_R[col][row], v_R = v_L diag(s)
    let g00 = v_L[0].x * s.x;
    let g10 = v_L[0].y * s.x;
    let g20 = v_L[0].z * s.x;
    let g01 = v_L[1].x * s.y;
    let g11 = v_L[1].y * s.y;
    let g21 = v_L[1].z * s.y;
    let g02 = v_L[2].x * s.z;
    let g12 = v_L[2].y * s.z;
    let g22 = v_L[2].z * s.z;
    let w = n.x;
    let x = n.y;
    let y = n.z;
    let z = n.w;
    let v_n = 2.0 * vec4<f32>(
        -z * g01 + y * g02 + z * g10 - x * g12 - y * g20 + x * g21,
        y * g01 + z * g02 + y * g10 - 2.0 * x * g11 - w * g12 + z * g20 + w * g21 - 2.0 * x * g22,
        -2.0 * y * g00 + x * g01 + w * g02 + x * g10 + z * g12 - w * g20 + z * g21 - 2.0 * y * g22,
        -2.0 * z * g00 - w * g01 + x * g02 + w * g10 - 2.0 * z * g11 + y * g12 + x * g20 + y * g21,
    );
    let v_q = (v_n - n * dot(n, v_n)) / qn;
    v_means[3u * g] += v_u.x;
    v_means[3u * g + 1u] += v_u.y;
    v_means[3u * g + 2u] += v_u.z;
    v_log_scales[3u * g] += v_ls.x;
    v_log_scales[3u * g + 1u] += v_ls.y;
    v_log_scales[3u * g + 2u] += v_ls.z;
    v_rotations[4u * g] += v_q.x;
    v_rotations[4u * g + 1u] += v_q.y;
    v_rotations[4u * g + 2u] += v_q.z;
    v_rotations[4u * g + 3u] += v_q.w;
    v_log_amplitudes[g] += v_la;
}
