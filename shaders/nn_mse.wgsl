// Mean squared error and its gradient in one pass (brushpy/nn/loss.py MSELossOp; reference:
// brushpy/nn/reference.py mse):
//
//   loss[0] = sum_i (x[i] - t[i])^2 / n        grad[i] = 2 (x[i] - t[i]) / n
//
// One workgroup of 256 invocations strides over the elements, then a tree reduction
// (reduce.wgsl): deterministic, and enough for the small tensors of a layer's tests and a
// network's training images (a 128x128x3 image is 192 elements per invocation).

#include "reduce.wgsl"

// MseParams: brushpy/nn/loss.py MSE_PARAMS
#struct MseParams

@group(0) @binding(0) var<uniform> params: MseParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> target_: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < params.n; i = i + 256u) {
        let d = x[i] - target_[i];
        grad[i] = 2.0 * d * params.inv_n;
        acc = acc + d * d;
    }
    let total = workgroup_sum2(lid, vec2<f32>(acc, 0.0));
    if (lid == 0u) {
        loss[0] = total.x * params.inv_n;
    }
}
