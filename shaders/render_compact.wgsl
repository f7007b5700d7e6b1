// Forward stage 1b: compact the visible splats (in input order) for the depth sort.
// For each i < N with visible[i] = 1: pos = visible_prefix[i] - 1 (inclusive prefix
// sum of `visible`), sort_keys[pos] = depth_keys[i] - smallest key (~counters[2], see
// project_forward.wgsl: the offset keys keep their order and need fewer radix bits),
// sort_ids[pos] = i.
#include "common.wgsl"
#include "render_common.wgsl"

@group(0) @binding(0) var<uniform> params: RenderParams;
@group(0) @binding(1) var<storage, read> visible_prefix: array<u32>; // [N] inclusive
@group(0) @binding(2) var<storage, read> depth_keys: array<u32>;     // [N]
@group(0) @binding(3) var<storage, read_write> sort_keys: array<u32>; // [>=V]
@group(0) @binding(4) var<storage, read_write> sort_ids: array<u32>;  // [>=V]
@group(0) @binding(5) var<storage, read> counters: array<u32>;        // [4]

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.counts.x) {
        return;
    }
    let incl = visible_prefix[i];
    var before = 0u;
    if (i > 0u) {
        before = visible_prefix[i - 1u];
    }
    if (incl != before) {
        sort_keys[before] = depth_keys[i] - ~counters[2];
        sort_ids[before] = i;
    }
}
