// Forward stage 4: list the (tile id, compact id) intersections of every visible
// splat, in depth order. Splat c writes its tile_counts_sorted[c] intersections at
// [isect_end[c] - tile_counts_sorted[c], isect_end[c]) (isect_end = inclusive prefix
// sum), tiles in row-major order; the stable sort by tile id that follows keeps the
// depth order inside each tile. The tile test is the one project_forward counted
// with, on the same floats. Should it ever find fewer tiles than were counted (a
// compiler evaluating the same function differently), the remaining slots are
// filled with (tile T-1, compact id V): row V of `projected` is a null splat
// (opacity 0) that every pixel skips, so the lists stay consistent.
#include "common.wgsl"
#include "render_common.wgsl"

@group(0) @binding(0) var<uniform> params: RenderParams;
@group(0) @binding(1) var<storage, read> aux: array<f32>;                    // [N,8]
@group(0) @binding(2) var<storage, read> global_from_compact: array<u32>;    // [V]
@group(0) @binding(3) var<storage, read> isect_end: array<u32>;              // [V]
@group(0) @binding(4) var<storage, read> tile_counts_sorted: array<u32>;     // [V]
@group(0) @binding(5) var<storage, read_write> tile_ids: array<u32>;         // [I]
@group(0) @binding(6) var<storage, read_write> compact_ids: array<u32>;      // [I]

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let c = thread_index(inv);
    if (c >= params.counts.w) {
        return;
    }
    let g = global_from_compact[c];
    let a = g * AUX_STRIDE;
    let xy = vec2<f32>(aux[a], aux[a + 1u]);
    let conic = vec3<f32>(aux[a + 2u], aux[a + 3u], aux[a + 4u]);
    let extent = vec2<f32>(aux[a + 5u], aux[a + 6u]);
    let power = opacity_power(aux[a + 7u]);
    let count = tile_counts_sorted[c];
    let end = isect_end[c];
    var slot = end - count;
    let bbox = tile_bbox(params, xy, extent);
    let tiles_x = params.image.z;
    for (var ty = bbox.y; ty < bbox.w; ty++) {
        for (var tx = bbox.x; tx < bbox.z; tx++) {
#if TEST_DROP_TILES
            // test hook (tests/test_render_forward.py): pretend every other tile was missed
            if (((tx + ty) & 1u) == 1u) {
                continue;
            }
#endif
            if (slot < end && tile_hit(params, xy, conic, power, tx, ty)) {
                tile_ids[slot] = ty * tiles_x + tx;
                compact_ids[slot] = c;
                slot++;
            }
        }
    }
    for (; slot < end; slot++) {
        tile_ids[slot] = params.counts2.y - 1u;
        compact_ids[slot] = params.counts.w;
    }
}
