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

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_workgroup_id(wid, nwg) * 256u + lid;
    if i >= params.num_splats {
        return;
    }
    var bad = array<bool, 5>(false, false, false, false, false);
    for (var c = 0u; c < 3u; c++) {
        bad[0] = bad[0] || non_finite(means[3u * i + c]);
        bad[2] = bad[2] || non_finite(log_scales[3u * i + c]);
    }
    for (var c = 0u; c < 4u; c++) {
        bad[1] = bad[1] || non_finite(rotations[4u * i + c]);
    }
    for (var c = 0u; c < params.sh_row_len; c++) {
        bad[3] = bad[3] || non_finite(sh_coeffs[params.sh_row_len * i + c]);
    }
    bad[4] = non_finite(raw_opacities[i]);
    var any_bad = false;
    for (var t = 0u; t < 5u; t++) {
        if bad[t] {
            atomicAdd(&counts[t], 1u);
            any_bad = true;
        }
    }
    if any_bad {
        atomicAdd(&counts[5], 1u);
    }
}
