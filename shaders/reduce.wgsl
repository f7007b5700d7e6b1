// Workgroup sum of a pair of f32 per invocation, for workgroups of REDUCE_WG (256)
// invocations: a tree reduction in workgroup memory (halving strides 128, 64, ..., 1,
// so every caller sums in the same order). Shared by loss_ssim.wgsl (per-tile loss
// and metric sums), loss_reduce.wgsl (the sum of those partials), and the MIP loss and
// gradient-norm kernels (mip_loss, mip_loss_total, mip_grad_norm: a scalar in .x).
//
// workgroup_sum2(lid, value) -> vec2 sum of `value` over the workgroup, in every invocation.
//   Every invocation must call it (uniform control flow); the workgroup size must be
//   REDUCE_WG. It may be called again: it waits for earlier readers of its cells first.

const REDUCE_WG: u32 = 256u;

var<workgroup> reduce_cells: array<vec2<f32>, REDUCE_WG>;

fn workgroup_sum2(lid: u32, value: vec2<f32>) -> vec2<f32> {
    workgroupBarrier();
    reduce_cells[lid] = value;
    workgroupBarrier();
    for (var s = REDUCE_WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            reduce_cells[lid] = reduce_cells[lid] + reduce_cells[lid + s];
        }
        workgroupBarrier();
    }
    return reduce_cells[0];
}
