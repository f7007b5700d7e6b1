// Forward stage 3: per visible splat in depth order (compact index c < V, input
// index g = global_from_compact[c]) write ForwardState.projected[c] =
//   x, y (2D mean, pixels), conic a, b, c (inverse of J W Σ Wᵀ Jᵀ + 0.3 I, or
//   + 0.1 I in mip mode), r, g, b = max(SH(dir) + 0.5, 0) with
//   dir = normalize(mean - camera centre), opacity = sigmoid(raw opacity)
//   (times the mip compensation in mip mode)
// and tile_counts_sorted[c] = tile_counts[g]. The 2D mean, conic and opacity are
// the exact floats project_forward used to count tiles (aux buffer), so the tiles
// that map_intersections lists agree with the counts.
// SPLAT_DEPTHS (depth renders only): also depths[c] = the camera z that
// project_forward computed (its depth_keys hold the bit pattern).
#include "common.wgsl"
#include "render_common.wgsl"
#include "sh.wgsl"

@group(0) @binding(0) var<uniform> params: RenderParams;
@group(0) @binding(1) var<storage, read> means: array<f32>;                 // [N,3]
@group(0) @binding(2) var<storage, read> sh_coeffs: array<f32>;             // [N,K,3]
@group(0) @binding(3) var<storage, read> aux: array<f32>;                   // [N,8]
@group(0) @binding(4) var<storage, read> global_from_compact: array<u32>;   // [V]
@group(0) @binding(5) var<storage, read> tile_counts: array<u32>;           // [N]
@group(0) @binding(6) var<storage, read_write> projected: array<f32>;       // [V,9]
@group(0) @binding(7) var<storage, read_write> tile_counts_sorted: array<u32>; // [V]
#if SPLAT_DEPTHS
@group(0) @binding(8) var<storage, read> depth_keys: array<u32>;            // [N] bits of z
@group(0) @binding(9) var<storage, read_write> depths: array<f32>;          // [V]
#endif

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let c = thread_index(inv);
    if (c >= params.counts.w) {
        return;
    }
    let g = global_from_compact[c];
    let mean = vec3<f32>(means[3u * g], means[3u * g + 1u], means[3u * g + 2u]);
    let view = mean - params.cam_pos.xyz;
    let dir = view / max(length(view), 1e-12);
    let degree = params.counts.y;
    let basis = sh_basis(degree, dir);
    let k_used = sh_num_coeffs(degree);
    let sh_base = g * params.counts.z * 3u;
    var color = vec3<f32>(0.0);
    for (var k = 0u; k < k_used; k++) {
        let o = sh_base + 3u * k;
        color += basis[k] * vec3<f32>(sh_coeffs[o], sh_coeffs[o + 1u], sh_coeffs[o + 2u]);
    }
    color = max(color + vec3<f32>(0.5), vec3<f32>(0.0));

    let a = g * AUX_STRIDE;
    let out = c * PROJECTED_STRIDE;
    projected[out] = aux[a];
    projected[out + 1u] = aux[a + 1u];
    projected[out + 2u] = aux[a + 2u];
    projected[out + 3u] = aux[a + 3u];
    projected[out + 4u] = aux[a + 4u];
    projected[out + 5u] = color.x;
    projected[out + 6u] = color.y;
    projected[out + 7u] = color.z;
    projected[out + 8u] = aux[a + 7u];
    tile_counts_sorted[c] = tile_counts[g];
#if SPLAT_DEPTHS
    depths[c] = bitcast<f32>(depth_keys[g]);
#endif
}
