// After each Adam step: log_scales into [scale_min, scale_max], log_amplitudes
// into [amp_min, amp_max], means into the box [0, 1]^3 (one thread per Gaussian).

#include "common.wgsl"

#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> means: array<f32>;
@group(0) @binding(2) var<storage, read_write> log_scales: array<f32>;
@group(0) @binding(3) var<storage, read_write> log_amplitudes: array<f32>;

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let g = thread_index(inv);
    if g >= params.count {
        return;
    }
    for (var k = 0u; k < 3u; k++) {
        means[3u * g + k] = clamp(means[3u * g + k], 0.0, 1.0);
        log_scales[3u * g + k] = clamp(log_scales[3u * g + k], params.scale_min, params.scale_max);
    }
    log_amplitudes[g] = clamp(log_amplitudes[g], params.amp_min, params.amp_max);
}
