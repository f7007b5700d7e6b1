// Viewer "splat scale" setting: out_log_scales = log_scales + ln(scale factor),
// i.e. every Gaussian's standard deviations multiplied by the factor.
#include "common.wgsl"

// Params: brushpy/viewer/view.py SCALE_PARAMS
#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> log_scales: array<f32>;
@group(0) @binding(2) var<storage, read_write> out_log_scales: array<f32>;

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let i = thread_index(inv);
    if i >= params.count {
        return;
    }
    out_log_scales[i] = log_scales[i] + params.log_factor;
}
