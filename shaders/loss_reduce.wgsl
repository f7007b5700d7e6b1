// Sum of per-tile partial pairs: out[out_offset + k] = sum_t partials[2 t + k], k = 0, 1.
// One workgroup; each thread strides over the partials, then a tree reduction (reduce.wgsl).
// Used for the image loss (k = 0: loss) and the metrics (k = 0: sum of SSIM, k = 1: squared error).

#include "reduce.wgsl"

// declared once in brushpy/loss/image_loss.py (REDUCE_PARAMS)
#struct ReduceParams

@group(0) @binding(0) var<uniform> params: ReduceParams;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    var a = 0.0;
    var b = 0.0;
    for (var i = lid; i < params.count; i = i + 256u) {
        a = a + partials[2u * i];
        b = b + partials[2u * i + 1u];
    }
    let total = workgroup_sum2(lid, vec2<f32>(a, b));
    if (lid == 0u) {
        out[params.out_offset] = total.x;
        out[params.out_offset + 1u] = total.y;
    }
}
