// Gradient clipping, pass 1: per-workgroup sums of squares of every MIP
// parameter gradient (one thread per Gaussian: 3 + 3 + 4 + 1 values).

#include "common.wgsl"
#include "reduce.wgsl"

#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> v_means: array<f32>;
@group(0) @binding(2) var<storage, read> v_log_scales: array<f32>;
@group(0) @binding(3) var<storage, read> v_rotations: array<f32>;
@group(0) @binding(4) var<storage, read> v_log_amplitudes: array<f32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let wg = workgroup_index(inv);
    let g = wg * 256u + inv.lid;
    var acc = 0.0;
    if g < params.count {
        let m = vec3<f32>(v_means[3u * g], v_means[3u * g + 1u], v_means[3u * g + 2u]);
        let s = vec3<f32>(v_log_scales[3u * g], v_log_scales[3u * g + 1u], v_log_scales[3u * g + 2u]);
        let r = vec4<f32>(v_rotations[4u * g], v_rotations[4u * g + 1u], v_rotations[4u * g + 2u], v_rotations[4u * g + 3u]);
        let a = v_log_amplitudes[g];
        acc = dot(m, m) + dot(s, s) + dot(r, r) + a * a;
    }
    let total = workgroup_sum2(inv.lid, vec2<f32>(acc, 0.0)).x;
    if inv.lid == 0u {
        partials[wg] = total;
    }
}
