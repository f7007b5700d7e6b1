// MIP projection: one thread per Gaussian. Writes the 2D mean, conic and log
// amplitude, the tile rectangle its 1/255 contour touches, and counts the
// Gaussian into every tile of that rectangle.
//
// Cull (rect left empty): non-finite values, amplitude < 1/255, non-positive
// 2D determinant, perspective depth < 0.01, off screen.
// Maths: tests/reference/mip.py (project).

#include "common.wgsl"
#include "mip_common.wgsl"

@group(0) @binding(0) var<storage, read> view: View;
@group(0) @binding(1) var<storage, read> means: array<f32>;
@group(0) @binding(2) var<storage, read> log_scales: array<f32>;
@group(0) @binding(3) var<storage, read> rotations: array<f32>;
@group(0) @binding(4) var<storage, read> log_amplitudes: array<f32>;
@group(0) @binding(5) var<storage, read_write> proj: array<f32>;
@group(0) @binding(6) var<storage, read_write> rects: array<u32>;
@group(0) @binding(7) var<storage, read_write> tile_counts: array<atomic<u32>>;

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let g = thread_index(inv);
    if g >= view.num_gaussians {
        return;
    }
    rects[4u * g] = 0u;
    rects[4u * g + 1u] = 0u;
    rects[4u * g + 2u] = 0u;
    rects[4u * g + 3u] = 0u;
    let u = vec3<f32>(means[3u * g], means[3u * g + 1u], means[3u * g + 2u]);
    let ls = vec3<f32>(log_scales[3u * g], log_scales[3u * g + 1u], log_scales[3u * g + 2u]);
    let q_raw = vec4<f32>(rotations[4u * g], rotations[4u * g + 1u], rotations[4u * g + 2u], rotations[4u * g + 3u]);
    let la = log_amplitudes[g];
    let tau = la + LOG255;
    let qn = length(q_raw);
    if !(tau > 0.0) || !is_finite3(u) || !is_finite3(ls) || !(qn > 0.0) || !(abs(la) < 1e30) {
        return;
    }
    let M = view_matrix(view);
    let c = M * u + view_translation(view);
    if view.orthographic == 0u && !(c.z >= 0.01) {
        return;
    }
    let R = quat_to_mat(q_raw / qn);
    let s = exp(ls);
    let L = scaled_rotation(R, s);
    let sig3 = L * transpose(L);
    let T = projection_jacobian(view, c) * M;
    let sig2 = T * sig3 * transpose(T);
    let cov = blurred_cov2d(view, sig2);
    if !(cov.w > 0.0) {
        return;
    }
    let xy = project_point(view, c);
    let rx = sqrt(2.0 * tau * cov.x);
    let ry = sqrt(2.0 * tau * cov.z);
    let lim = vec2<f32>(f32(view.tiles_x), f32(view.tiles_y));
    let lo = clamp(floor((xy - vec2<f32>(rx, ry) - 0.5) / f32(TILE)), vec2<f32>(0.0), lim);
    let hi = clamp(floor((xy + vec2<f32>(rx, ry)) / f32(TILE)) + 1.0, vec2<f32>(0.0), lim);
    if !(lo.x < hi.x) || !(lo.y < hi.y) {
        return;
    }
    let b0 = PROJ_STRIDE * g;
    proj[b0] = xy.x;
    proj[b0 + 1u] = xy.y;
    let con = cov2d_conic(cov);
    proj[b0 + 2u] = con.x;
    proj[b0 + 3u] = con.y;
    proj[b0 + 4u] = con.z;
    proj[b0 + 5u] = la;
    let x0 = u32(lo.x);
    let y0 = u32(lo.y);
    let x1 = u32(hi.x);
    let y1 = u32(hi.y);
    rects[4u * g] = x0;
    rects[4u * g + 1u] = y0;
    rects[4u * g + 2u] = x1;
    rects[4u * g + 3u] = y1;
    for (var ty = y0; ty < y1; ty++) {
        for (var tx = x0; tx < x1; tx++) {
            atomicAdd(&tile_counts[ty * view.tiles_x + tx], 1u);
        }
    }
}
