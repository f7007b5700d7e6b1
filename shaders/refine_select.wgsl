// Refine, selection passes (one entry per define):
//
// SELECT_FIRST: selected[sorted_vals[j]] = 1 for j < count (the `count`
//     smallest weighted keys: a sample without replacement).
// FORCE_FLAGS:  force[i] = 1 for force-split candidates not yet selected.
// KEY_HISTOGRAM: counts of candidate keys (!= 0xffffffff) per value of their
//     top HIST_BITS bits (for a positive float key: exponent and the first
//     mantissa bits, i.e. a quarter-octave of key value per bin).
// KEY_FLAGS:    flag[i] = 1 where keys[i] < limit (candidates below a cut).
// KEY_COMPACT:  those (key, index) pairs packed in index order by the
//     inclusive prefix sum of the flags, so that the sort only sees them.
// FORCE_SELECT: select force candidates in index order while their inclusive
//     rank <= budget (counter 8 counts them); then, with the final selection
//     of splat i known, write the growth key of each growth candidate that is
//     still unselected (weight = refine statistic; counter 9 counts them).

#include "common.wgsl"
#include "refine_common.wgsl"

#struct Params

const WG: u32 = 256u;

#if SELECT_FIRST
@group(0) @binding(0) var<storage, read> sorted_vals: array<u32>;
@group(0) @binding(1) var<storage, read_write> selected: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256, 1, 1)
fn main(inv: Thread) {
    let j = thread_index(inv);
    if (j >= params.count) {
        return;
    }
    selected[sorted_vals[j]] = 1u;
}
#endif

#if KEY_HISTOGRAM
const HIST_BINS: u32 = {{HIST_BINS}}u;
const HIST_SHIFT: u32 = 32u - {{HIST_BITS}}u;
@group(0) @binding(0) var<storage, read> keys: array<u32>;
@group(0) @binding(1) var<storage, read_write> histogram: array<atomic<u32>>;
@group(0) @binding(2) var<uniform> params: Params;

var<workgroup> wg_hist: array<atomic<u32>, HIST_BINS>;

@compute @workgroup_size(256, 1, 1)
fn main(inv: Thread) {
    for (var b = inv.lid; b < HIST_BINS; b += WG) {
        atomicStore(&wg_hist[b], 0u);
    }
    workgroupBarrier();
    let i = thread_index(inv);
    if (i < params.count) {
        let key = keys[i];
        if (key != 0xffffffffu) {
            atomicAdd(&wg_hist[key >> HIST_SHIFT], 1u);
        }
    }
    workgroupBarrier();
    for (var b = inv.lid; b < HIST_BINS; b += WG) {
        let c = atomicLoad(&wg_hist[b]);
        if (c != 0u) {
            atomicAdd(&histogram[b], c);
        }
    }
}
#endif

#if KEY_FLAGS
@group(0) @binding(0) var<storage, read> keys: array<u32>;
@group(0) @binding(1) var<storage, read_write> flag: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256, 1, 1)
fn main(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.count) {
        return;
    }
    flag[i] = select(0u, 1u, keys[i] < params.budget);
}
#endif

#if KEY_COMPACT
@group(0) @binding(0) var<storage, read> keys: array<u32>;
@group(0) @binding(1) var<storage, read> rank: array<u32>;
@group(0) @binding(2) var<storage, read_write> out_keys: array<u32>;
@group(0) @binding(3) var<storage, read_write> out_vals: array<u32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(256, 1, 1)
fn main(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.count) {
        return;
    }
    let key = keys[i];
    if (key < params.budget) {
        let r = rank[i] - 1u;
        out_keys[r] = key;
        out_vals[r] = i;
    }
}
#endif

#if FORCE_FLAGS
@group(0) @binding(0) var<storage, read> flags: array<u32>;
@group(0) @binding(1) var<storage, read> selected: array<u32>;
@group(0) @binding(2) var<storage, read_write> force: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256, 1, 1)
fn main(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.count) {
        return;
    }
    force[i] = select(0u, 1u, (flags[i] & 4u) != 0u && selected[i] == 0u);
}
#endif

#if FORCE_SELECT
@group(0) @binding(0) var<storage, read> flags: array<u32>;
@group(0) @binding(1) var<storage, read> force_rank: array<u32>;
@group(0) @binding(2) var<storage, read_write> selected: array<u32>;
@group(0) @binding(3) var<storage, read> refine_stat: array<f32>;
@group(0) @binding(4) var<storage, read_write> grow_keys: array<u32>;
@group(0) @binding(5) var<storage, read_write> grow_vals: array<u32>;
@group(0) @binding(6) var<storage, read_write> counters: array<atomic<u32>>;
@group(0) @binding(7) var<uniform> params: Params;

var<workgroup> wg_force: atomic<u32>;
var<workgroup> wg_grow: atomic<u32>;

@compute @workgroup_size(256, 1, 1)
fn main(inv: Thread) {
    if (inv.lid == 0u) {
        atomicStore(&wg_force, 0u);
        atomicStore(&wg_grow, 0u);
    }
    workgroupBarrier();
    let i = thread_index(inv);
    if (i < params.count) {
        let f = flags[i];
        var sel = selected[i];
        if ((f & 4u) != 0u && sel == 0u && force_rank[i] <= params.budget) {
            sel = 1u;
            selected[i] = 1u;
            atomicAdd(&wg_force, 1u);
        }
        var key = 0xffffffffu;
        if ((f & 8u) != 0u && sel == 0u) {
            key = weighted_key_bits(params.grow_key, i, refine_stat[i]);
            atomicAdd(&wg_grow, 1u);
        }
        grow_keys[i] = key;
        grow_vals[i] = i;
    }
    workgroupBarrier();
    if (inv.lid == 0u) {
        atomicAdd(&counters[8], atomicLoad(&wg_force));
        atomicAdd(&counters[9], atomicLoad(&wg_grow));
    }
}
#endif
