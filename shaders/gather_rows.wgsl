// Row gather and per-row zeroing for tensors of any row width (refine's splat
// parameters and the optimizer's moments).
//
// Rows are `width` 32-bit words; the data is handled as raw bits (u32), so the
// same kernels serve float32, uint32 and int32 tensors bit-exactly.
//
// gather:    dst[r, :] = src[src_rows[r], :]           for r < count
//            (0 instead where src_rows[r] >= src_count, and with USE_MASK
//            where row_mask[r] != 0)
// zero_rows: dst[r, :] = 0 where row_mask[r] != 0     for r < count
//            (GATHER off, USE_MASK on: the same entry point without the gather)
//
// WIDTH (words per row) is a compile-time constant so that the row index
// e / WIDTH is a multiply-shift, not an integer division.

#include "common.wgsl"

// RowParams: brushpy/gpu/rows.py ROW_PARAMS
#struct RowParams

const WIDTH: u32 = {{WIDTH}}u;

#if GATHER
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read> src_rows: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@group(0) @binding(3) var<uniform> params: RowParams;
#if USE_MASK
@group(0) @binding(4) var<storage, read> row_mask: array<u32>;
#endif
#else
@group(0) @binding(0) var<storage, read_write> dst: array<u32>;
@group(0) @binding(1) var<storage, read> row_mask: array<u32>;
@group(0) @binding(2) var<uniform> params: RowParams;
#endif

@compute @workgroup_size(256, 1, 1)
fn main(inv: Thread) {
    let e = thread_index(inv);
    let r = e / WIDTH;
    if (r >= params.count) {
        return;
    }
#if USE_MASK
    if (row_mask[r] != 0u) {
        dst[e] = 0u;
        return;
    }
#endif
#if GATHER
    let c = e - r * WIDTH;
    let s = src_rows[r];
    if (s >= params.src_count) {
        dst[e] = 0u;
        return;
    }
    dst[e] = src[s * WIDTH + c];
#endif
}
