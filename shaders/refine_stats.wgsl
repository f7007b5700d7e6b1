// Refine statistics, accumulated after each training step's backward.
//
// For each visible splat v (compact order of the forward), g = global index:
//   refine_stat[g]     = max(refine_stat[g], weight)        (finite weights only)
//   visible_count[g]  += 1
//   max_screen_frac[g] = max(max_screen_frac[g], screen)
// where screen = max(extent_x / W, extent_y / H) and extent is the half size
// of the bounding box of the ellipse where the splat's alpha reaches 1/255:
// o·exp(-½ dᵀ conic d) = 1/255  ->  extent_x = sqrt(2 ln(255 o) · Σxx),
// Σ = conic⁻¹ (the same extent the forward uses to count tiles, as Brush).
// No atomics: a splat appears at most once in global_from_compact.

#include "common.wgsl"
#include "refine_common.wgsl"

#struct Params

@group(0) @binding(0) var<storage, read> global_from_compact: array<u32>;
@group(0) @binding(1) var<storage, read> projected: array<f32>;  // [V, 9]
@group(0) @binding(2) var<storage, read> refine_weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> refine_stat: array<f32>;
@group(0) @binding(4) var<storage, read_write> visible_count: array<u32>;
@group(0) @binding(5) var<storage, read_write> max_screen_frac: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

@compute @workgroup_size(256, 1, 1)
fn main(inv: Thread) {
    let v = thread_index(inv);
    if (v >= params.num_visible) {
        return;
    }
    let g = global_from_compact[v];
    let w = refine_weight[select(g, v, params.compact_weights != 0u)];
    if (is_finite_f32(w) && w > refine_stat[g]) {
        refine_stat[g] = w;
    }
    visible_count[g] = visible_count[g] + 1u;

    let a = projected[9u * v + 2u];
    let b = projected[9u * v + 3u];
    let c = projected[9u * v + 4u];
    let o = projected[9u * v + 8u];
    let det = a * c - b * b;
    if (det > 0.0 && o * 255.0 > 1.0) {
        let t = 2.0 * log(255.0 * o);
        let frac = max(sqrt(t * c / det) / params.width, sqrt(t * a / det) / params.height);
        if (frac > max_screen_frac[g]) {
            max_screen_frac[g] = frac;
        }
    }
}
