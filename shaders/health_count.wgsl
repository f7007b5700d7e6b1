// Training health: per parameter tensor, the number of splats with a non-finite
// (NaN or ±inf) value, and the number of splats with any. One thread per splat.
// A value is non-finite when its exponent bits are all ones (IEEE 754), tested
// on the bits so that no fast-math assumption can fold the test away.
//   counts[0..5) : means, rotations, log_scales, sh_coeffs, raw_opacities (Splats.PARAM_NAMES order)
//   counts[5]    : splats with at least one non-finite value
#include "common.wgsl"

// Params: brushpy/train/health.py HEALTH_PARAMS
#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> means: array<f32>;
@group(0) @binding(2) var<storage, read> log_scales: array<f32>;
@group(0) @binding(3) var<storage, read> rotations: array<f32>;
@group(0) @binding(4) var<storage, read> sh_coeffs: array<f32>;
@group(0) @binding(5) var<storage, read> raw_opacities: array<f32>;
@group(0) @binding(6) var<storage, read_write> counts: array<atomic<u32>>;

fn non_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

// 1 if any of the values is non-finite (max of the exponent fields: all ones only for NaN/inf).
fn any_non_finite4(a: f32, b: f32, c: f32, d: f32) -> bool {
    let e = max(max(bitcast<u32>(a) & 0x7f800000u, bitcast<u32>(b) & 0x7f800000u),
                max(bitcast<u32>(c) & 0x7f800000u, bitcast<u32>(d) & 0x7f800000u));
    return e == 0x7f800000u;
}

fn count_bad(slot: u32, bad: bool) -> u32 {
    if bad {
        atomicAdd(&counts[slot], 1u);
        return 1u;
    }
    return 0u;
}

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let i = thread_index(inv);
    if i >= params.num_splats {
        return;
    }
    let bad_means = any_non_finite4(means[3u * i], means[3u * i + 1u], means[3u * i + 2u], 0.0);
    let bad_rotations = any_non_finite4(rotations[4u * i], rotations[4u * i + 1u], rotations[4u * i + 2u],
                                        rotations[4u * i + 3u]);
    let bad_scales = any_non_finite4(log_scales[3u * i], log_scales[3u * i + 1u], log_scales[3u * i + 2u], 0.0);
    var exp_max = 0u;
    let base = params.sh_row_len * i;
    for (var c = 0u; c < params.sh_row_len; c++) {
        exp_max = max(exp_max, bitcast<u32>(sh_coeffs[base + c]) & 0x7f800000u);
    }
    let bad_sh = exp_max == 0x7f800000u;
    let bad_opacity = non_finite(raw_opacities[i]);
    let any_bad = count_bad(0u, bad_means) + count_bad(1u, bad_rotations) + count_bad(2u, bad_scales)
                + count_bad(3u, bad_sh) + count_bad(4u, bad_opacity);
    if any_bad > 0u {
        atomicAdd(&counts[5], 1u);
    }
}
