// Exclusive scan of the per-tile Gaussian counts (one workgroup, any tile
// count): tile_base[t] = first list slot of tile t; tile_ranges[t] = [start,
// end) clamped to the list capacity; totals[slot] = intersections needed.

#include "common.wgsl"
#include "mip_common.wgsl"

@group(0) @binding(0) var<storage, read> view: View;
@group(0) @binding(1) var<storage, read> tile_counts: array<u32>;
@group(0) @binding(2) var<storage, read_write> tile_base: array<u32>;
@group(0) @binding(3) var<storage, read_write> tile_ranges: array<u32>;
@group(0) @binding(4) var<storage, read_write> totals: array<u32>;
#struct Params

@group(0) @binding(5) var<uniform> params: Params;

var<workgroup> sums: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    let n = view.tiles_x * view.tiles_y;
    let per = ceil_div(n, 256u);
    let begin = min(lid * per, n);
    let end = min(begin + per, n);
    var local = 0u;
    for (var t = begin; t < end; t++) {
        local += tile_counts[t];
    }
    sums[lid] = local;
    workgroupBarrier();
    for (var off = 1u; off < 256u; off = off * 2u) {
        var v = 0u;
        if lid >= off {
            v = sums[lid - off];
        }
        workgroupBarrier();
        sums[lid] = sums[lid] + v;
        workgroupBarrier();
    }
    var run = sums[lid] - local;   // exclusive prefix of this thread's chunk
    let cap = view.capacity;
    for (var t = begin; t < end; t++) {
        let cnt = tile_counts[t];
        tile_base[t] = run;
        tile_ranges[2u * t] = min(run, cap);
        tile_ranges[2u * t + 1u] = min(run + cnt, cap);
        run += cnt;
    }
    if lid == 255u {
        totals[params.slot] = sums[255];
    }
}
