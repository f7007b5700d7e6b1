// acc[i] += grad[i] for i < n: sums gradients that reach one tensor from
// several ops (brushpy/autodiff.py).

#include "common.wgsl"

// Params: brushpy/autodiff.py ADD_PARAMS
#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;

@compute @workgroup_size({{WG}})
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_workgroup_id(wid, nwg) * {{WG}}u + lid;
    if i < params.n {
        acc[i] += grad[i];
    }
}
