// Writes each Gaussian's id into the list of every tile of its rectangle
// (one thread per Gaussian; order inside a tile is arbitrary: the soft
// maximum does not depend on it). Slots past the capacity are dropped.

#include "common.wgsl"
#include "mip_common.wgsl"

@group(0) @binding(0) var<storage, read> view: View;
@group(0) @binding(1) var<storage, read> rects: array<u32>;
@group(0) @binding(2) var<storage, read> tile_base: array<u32>;
@group(0) @binding(3) var<storage, read_write> cursor: array<atomic<u32>>;
@group(0) @binding(4) var<storage, read_write> isect_ids: array<u32>;

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let g = thread_index(inv);
    if g >= view.num_gaussians {
        return;
    }
    let x0 = rects[4u * g];
    let y0 = rects[4u * g + 1u];
    let x1 = rects[4u * g + 2u];
    let y1 = rects[4u * g + 3u];
    for (var ty = y0; ty < y1; ty++) {
        for (var tx = x0; tx < x1; tx++) {
            let t = ty * view.tiles_x + tx;
            let idx = tile_base[t] + atomicAdd(&cursor[t], 1u);
            if idx < view.capacity {
                isect_ids[idx] = g;
            }
        }
    }
}
