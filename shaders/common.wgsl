// Shared helpers for brushpy kernels. Include with: #include "common.wgsl"

// Linear workgroup index of a dispatch that may be folded into 2D
// (see brushpy.gpu.kernel.workgroups_for).
fn linear_workgroup_id(wid: vec3<u32>, num_wg: vec3<u32>) -> u32 {
    return wid.x + wid.y * num_wg.x;
}

fn ceil_div(a: u32, b: u32) -> u32 {
    return (a + b - 1u) / b;
}
