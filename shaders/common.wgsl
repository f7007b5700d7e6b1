// Shared helpers for brushpy kernels. Include with: #include "common.wgsl"

// Linear workgroup index of a dispatch that may be folded into 2D
// (see brushpy.gpu.kernel.workgroups_for).
fn linear_workgroup_id(wid: vec3<u32>, num_wg: vec3<u32>) -> u32 {
    return wid.x + wid.y * num_wg.x;
}

// The builtins of a compute entry point, taken as one argument: `fn main(inv: Thread)`.
struct Thread {
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
}

// Linear index of the workgroup of inv (linear_workgroup_id).
fn workgroup_index(inv: Thread) -> u32 {
    return linear_workgroup_id(inv.wid, inv.nwg);
}

// Global index of invocation inv in a dispatch of 256-invocation workgroups
// (@workgroup_size(256); brushpy.gpu.kernel.workgroups_for(n, 256)).
fn thread_index(inv: Thread) -> u32 {
    return linear_workgroup_id(inv.wid, inv.nwg) * 256u + inv.lid;
}

fn ceil_div(a: u32, b: u32) -> u32 {
    return (a + b - 1u) / b;
}
