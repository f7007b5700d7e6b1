// Sum of per-tile partial pairs: out[out_offset + k] = sum_t partials[2 t + k], k = 0, 1.
// One workgroup; each thread strides over the partials, then a tree reduction.
// Used for the image loss (k = 0: loss) and the metrics (k = 0: sum of SSIM, k = 1: squared error).

// declared once in brushpy/loss/image_loss.py (REDUCE_PARAMS)
#struct ReduceParams

@group(0) @binding(0) var<uniform> params: ReduceParams;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> red0: array<f32, 256>;
var<workgroup> red1: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    var a = 0.0;
    var b = 0.0;
    for (var i = lid; i < params.count; i = i + 256u) {
        a = a + partials[2u * i];
        b = b + partials[2u * i + 1u];
    }
    red0[lid] = a;
    red1[lid] = b;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red0[lid] = red0[lid] + red0[lid + s];
            red1[lid] = red1[lid] + red1[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        out[params.out_offset] = red0[0];
        out[params.out_offset + 1u] = red1[0];
    }
}
