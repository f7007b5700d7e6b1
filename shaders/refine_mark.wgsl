// Refine, pass 1: per splat, decide pruning and candidacy.
//
// Writes keep[i] (1 = survives), flags[i] (bit 0 keep, bit 1 visible since the
// last refine, bit 2 force-split candidate, bit 3 growth candidate), the
// opacity-weighted random key of the re-fill sample and its splat index, and
// counters (see brushpy/train/refine.py: _C_*).

#include "common.wgsl"
#include "refine_common.wgsl"

#struct Params

@group(0) @binding(0) var<storage, read> means: array<f32>;
@group(0) @binding(1) var<storage, read> rotations: array<f32>;
@group(0) @binding(2) var<storage, read> log_scales: array<f32>;
@group(0) @binding(3) var<storage, read> sh_coeffs: array<f32>;
@group(0) @binding(4) var<storage, read> raw_opacities: array<f32>;
@group(0) @binding(5) var<storage, read> refine_stat: array<f32>;
@group(0) @binding(6) var<storage, read> visible_count: array<u32>;
@group(0) @binding(7) var<storage, read> max_screen_frac: array<f32>;
@group(0) @binding(8) var<storage, read_write> keep: array<u32>;
@group(0) @binding(9) var<storage, read_write> flags: array<u32>;
@group(0) @binding(10) var<storage, read_write> refill_keys: array<u32>;
@group(0) @binding(11) var<storage, read_write> refill_vals: array<u32>;
@group(0) @binding(12) var<storage, read_write> counters: array<atomic<u32>>;
@group(0) @binding(13) var<uniform> params: Params;

const NUM_COUNTERS: u32 = 8u;

// Counters are summed per workgroup first: one global atomic per workgroup
// and counter instead of one per splat.
var<workgroup> wg_counts: array<atomic<u32>, 8>;

@compute @workgroup_size(256, 1, 1)
fn main(inv: Thread) {
    if (inv.lid < NUM_COUNTERS) {
        atomicStore(&wg_counts[inv.lid], 0u);
    }
    workgroupBarrier();
    let i = thread_index(inv);
    if (i < params.n) {
        mark_splat(i);
    }
    workgroupBarrier();
    if (inv.lid < NUM_COUNTERS) {
        let c = atomicLoad(&wg_counts[inv.lid]);
        if (c != 0u) {
            atomicAdd(&counters[inv.lid], c);
        }
    }
}

fn mark_splat(i: u32) {
    let center = vec3<f32>(params.center_x, params.center_y, params.center_z);

    var finite = true;
    var huge = false;
    for (var a = 0u; a < 3u; a++) {
        let m = means[3u * i + a];
        let s = log_scales[3u * i + a];
        finite = finite && is_finite_f32(m) && is_finite_f32(s);
        huge = huge || s > params.log_scale_max || abs(m - center[a]) > params.distance_max;
    }
    for (var a = 0u; a < 4u; a++) {
        finite = finite && is_finite_f32(rotations[4u * i + a]);
    }
    for (var a = 0u; a < params.sh_width; a++) {
        finite = finite && is_finite_f32(sh_coeffs[params.sh_width * i + a]);
    }
    let raw = raw_opacities[i];
    finite = finite && is_finite_f32(raw);
    let transparent = raw < params.raw_opacity_min;

    var kept = true;
    if ((params.mode & 4u) != 0u) {
        if (!finite) {
            atomicAdd(&wg_counts[5], 1u);
            kept = false;
        } else if (transparent) {
            atomicAdd(&wg_counts[6], 1u);
            kept = false;
        } else if (huge) {
            atomicAdd(&wg_counts[7], 1u);
            kept = false;
        }
    }

    let visible = visible_count[i] > 0u;
    var f = 0u;
    var key = 0xffffffffu;
    if (kept) {
        atomicAdd(&wg_counts[4], 1u);
        f |= 1u;
        if (visible) {
            f |= 2u;
            atomicAdd(&wg_counts[1], 1u);
            key = weighted_key_bits(params.refill_key, i, sigmoid(raw));
            if ((params.mode & 1u) != 0u && max_screen_frac[i] > params.split_screen) {
                f |= 4u;
                atomicAdd(&wg_counts[2], 1u);
            }
            if ((params.mode & 2u) != 0u && refine_stat[i] > params.grow_threshold) {
                f |= 8u;
                atomicAdd(&wg_counts[3], 1u);
            }
        }
    } else {
        atomicAdd(&wg_counts[0], 1u);
    }
    keep[i] = select(0u, 1u, kept);
    flags[i] = f;
    refill_keys[i] = key;
    refill_vals[i] = i;
}
