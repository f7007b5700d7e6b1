// Refine, split maths and opacity decay (one entry per define).
//
// SPLIT, for split k of old splat i (parent row p = rank of i among
// survivors, child row c = n_kept + k), after rotations/SH were gathered:
//   a      = longest axis (largest log-scale, first on ties)
//   kf     = 1/sqrt(2), or min(1/sqrt(2), split_screen / max_screen_frac[i])
//            when force-splitting is on (children of a splat too large on
//            screen land at split_screen)
//   scale  : log_scale[a] += ln(kf)                       (both halves)
//   offset : R(q) · e_a · sqrt(1 - kf²) · exp(log_scale[a])
//   means  : parent -= offset, child = mean + offset
//   opacity: 1 - (1 - o)^(1/sqrt(2)), clamped to [1/255, 254/255] (both)
// DECAY, every row r < count: o' = clamp(sigmoid(raw) - decay, 1e-12, 1 - 2^-24).

#include "common.wgsl"
#include "refine_common.wgsl"

#if SPLIT
#struct Params

@group(0) @binding(0) var<storage, read> split_old: array<u32>;
@group(0) @binding(1) var<storage, read> keep_rank: array<u32>;
@group(0) @binding(2) var<storage, read> means: array<f32>;
@group(0) @binding(3) var<storage, read> rotations: array<f32>;
@group(0) @binding(4) var<storage, read> log_scales: array<f32>;
@group(0) @binding(5) var<storage, read> raw_opacities: array<f32>;
@group(0) @binding(6) var<storage, read> max_screen_frac: array<f32>;
@group(0) @binding(7) var<storage, read_write> new_means: array<f32>;
@group(0) @binding(8) var<storage, read_write> new_log_scales: array<f32>;
@group(0) @binding(9) var<storage, read_write> new_raw_opacities: array<f32>;
@group(0) @binding(10) var<uniform> params: Params;

const FRAC_1_SQRT_2: f32 = 0.70710678118654752;

@compute @workgroup_size(256, 1, 1)
fn main(inv: Thread) {
    let k = thread_index(inv);
    if (k >= params.n_split) {
        return;
    }
    let i = split_old[k];
    let p = keep_rank[i] - 1u;
    let c = params.n_kept + k;

    var ls = vec3<f32>(log_scales[3u * i], log_scales[3u * i + 1u], log_scales[3u * i + 2u]);
    var a = 0u;
    if (ls.y > ls[a]) { a = 1u; }
    if (ls.z > ls[a]) { a = 2u; }

    var kf = FRAC_1_SQRT_2;
    if (params.split_screen > 0.0) {
        kf = min(kf, params.split_screen / max(max_screen_frac[i], 1e-6));
    }
    var local = vec3<f32>(0.0);
    local[a] = sqrt(max(1.0 - kf * kf, 0.0)) * exp(ls[a]);
    let q = normalize_quat(vec4<f32>(rotations[4u * i], rotations[4u * i + 1u],
                                     rotations[4u * i + 2u], rotations[4u * i + 3u]));
    let offset = quat_rotate(q, local);
    ls[a] = ls[a] + log(kf);

    let m = vec3<f32>(means[3u * i], means[3u * i + 1u], means[3u * i + 2u]);
    let mp = m - offset;
    let mc = m + offset;
    for (var d = 0u; d < 3u; d++) {
        new_means[3u * p + d] = mp[d];
        new_means[3u * c + d] = mc[d];
        new_log_scales[3u * p + d] = ls[d];
        new_log_scales[3u * c + d] = ls[d];
    }

    // (1 - o) = exp(-softplus(raw)); q = (1 - o)^(1/sqrt 2) = 1 - new opacity.
    let raw = raw_opacities[i];
    let softplus = max(raw, 0.0) + log(1.0 + exp(-abs(raw)));
    let tq = clamp(exp(-FRAC_1_SQRT_2 * softplus), 1.0 / 255.0, 254.0 / 255.0);
    let new_raw = log(1.0 - tq) - log(tq);
    new_raw_opacities[p] = new_raw;
    new_raw_opacities[c] = new_raw;
}
#endif

#if DECAY
#struct Params

@group(0) @binding(0) var<storage, read_write> raw_opacities: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(256, 1, 1)
fn main(inv: Thread) {
    let r = thread_index(inv);
    if (r >= params.count) {
        return;
    }
    let o = clamp(sigmoid(raw_opacities[r]) - params.decay, 1e-12, 0.99999994);
    raw_opacities[r] = log(o / (1.0 - o));
}
#endif
