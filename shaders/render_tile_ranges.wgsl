// Forward stage 4b: per-tile [start, end) ranges into the tile-sorted intersection
// list. tile_ranges must be zeroed first (tiles without intersections stay [0, 0)).
#include "common.wgsl"
#include "render_common.wgsl"

@group(0) @binding(0) var<uniform> params: RenderParams;
@group(0) @binding(1) var<storage, read> sorted_tile_ids: array<u32>;    // [I]
@group(0) @binding(2) var<storage, read_write> tile_ranges: array<u32>;  // [T,2]

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let i = thread_index(inv);
    let n = params.counts2.x;
    if (i >= n) {
        return;
    }
    let t = sorted_tile_ids[i];
    if (i == 0u || sorted_tile_ids[i - 1u] != t) {
        tile_ranges[2u * t] = i;
    }
    if (i + 1u == n || sorted_tile_ids[i + 1u] != t) {
        tile_ranges[2u * t + 1u] = i + 1u;
    }
}
