// Refine, compaction: the new row layout.
//
// Survivors keep their order in rows [0, n_kept); the k-th selected splat
// (in index order) also gets a child at row n_kept + k. src_rows[r] is the
// old row that new row r comes from; zero_mask[r] = 1 for both halves of a
// split (their Adam moments restart); split_old[k] = old row of split k.

#include "common.wgsl"

#struct Params

@group(0) @binding(0) var<storage, read> keep: array<u32>;
@group(0) @binding(1) var<storage, read> selected: array<u32>;
@group(0) @binding(2) var<storage, read> keep_rank: array<u32>;      // inclusive prefix sum of keep
@group(0) @binding(3) var<storage, read> selected_rank: array<u32>;  // inclusive prefix sum of selected
@group(0) @binding(4) var<storage, read_write> src_rows: array<u32>;
@group(0) @binding(5) var<storage, read_write> zero_mask: array<u32>;
@group(0) @binding(6) var<storage, read_write> split_old: array<u32>;
@group(0) @binding(7) var<uniform> params: Params;

@compute @workgroup_size(256, 1, 1)
fn main(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.n || keep[i] == 0u) {
        return;
    }
    let r = keep_rank[i] - 1u;
    let split = selected[i] != 0u;
    src_rows[r] = i;
    zero_mask[r] = select(0u, 1u, split);
    if (split) {
        let k = selected_rank[i] - 1u;
        let c = params.n_kept + k;
        src_rows[c] = i;
        zero_mask[c] = 1u;
        split_old[k] = i;
    }
}
