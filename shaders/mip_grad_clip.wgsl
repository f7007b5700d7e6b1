// Gradient clipping, pass 2: every workgroup sums the partials (few hundred)
// into the total norm, then scales its Gaussians' gradients by
// min(1, max_norm / (norm + 1e-6)) (torch.nn.utils.clip_grad_norm_'s rule).
// Workgroup 0 writes (norm, scale) to norm_out.

#include "common.wgsl"

#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> v_means: array<f32>;
@group(0) @binding(3) var<storage, read_write> v_log_scales: array<f32>;
@group(0) @binding(4) var<storage, read_write> v_rotations: array<f32>;
@group(0) @binding(5) var<storage, read_write> v_log_amplitudes: array<f32>;
@group(0) @binding(6) var<storage, read_write> norm_out: array<f32>;

var<workgroup> wg_scale: f32;

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let wg = workgroup_index(inv);
    if inv.lid == 0u {
        var acc = 0.0;
        for (var i = 0u; i < params.num_partials; i++) {
            acc += partials[i];
        }
        let norm = sqrt(acc);
        let scale = min(1.0, params.max_norm / (norm + 1e-6));
        wg_scale = scale;
        if wg == 0u {
            norm_out[0] = norm;
            norm_out[1] = scale;
        }
    }
    let scale = workgroupUniformLoad(&wg_scale);
    let g = wg * 256u + inv.lid;
    if g >= params.count || scale >= 1.0 {
        return;
    }
    for (var k = 0u; k < 3u; k++) {
        v_means[3u * g + k] *= scale;
        v_log_scales[3u * g + k] *= scale;
    }
    for (var k = 0u; k < 4u; k++) {
        v_rotations[4u * g + k] *= scale;
    }
    v_log_amplitudes[g] *= scale;
}
