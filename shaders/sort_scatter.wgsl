// Radix sort, pass step 3: stable scatter of one block's (key, value) pairs.
//
// Block b's keys are ranked locally (stable: invocation t holds keys
// b*BLOCK + t*EPT + [0, EPT) and walks them in order):
//   1. each invocation counts its keys per digit into its own column of `smem`
//      (8 rows x WG, digit d in row d & 7, 16-bit half d >> 3), remembering for
//      each key how many earlier keys of its own chunk share its digit;
//   2. the 8*WG packed counters are exclusive-scanned in row-major order
//      (raking: 8 per invocation, then a workgroup scan of the invocation sums);
//      the low half of cell (d, t) is then #keys with digit < d plus #keys with
//      digit d held by invocations < t (d < 8); the high half is the same counted
//      from digit 8, so digits >= 8 add the block's count of digits 0..7;
//   3. pairs are reordered by local rank through workgroup memory and written
//      out: out[global_start(d, b) + local_rank - local_start(d)], consecutive
//      invocations writing consecutive slots of one digit run.
// global_start(d, b) = offsets[d*num_blocks + b] - counts[d*num_blocks + b]
// (offsets = inclusive scan of counts, digit-major).
#include "common.wgsl"
#include "prefix_sum_workgroup.wgsl"

struct Params {
    count: u32,
    shift: u32,
    digit_mask: u32,
    num_blocks: u32,
}

const WG: u32 = {{WG}}u;
const EPT: u32 = {{EPT}}u;
const BLOCK: u32 = WG * EPT;
const ROWS: u32 = 8u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> keys_in: array<u32>;
@group(0) @binding(2) var<storage, read> values_in: array<u32>;
@group(0) @binding(3) var<storage, read> counts: array<u32>;
@group(0) @binding(4) var<storage, read> offsets: array<u32>;
@group(0) @binding(5) var<storage, read_write> keys_out: array<u32>;
@group(0) @binding(6) var<storage, read_write> values_out: array<u32>;

// Counters (ROWS * WG) first, then reused for the reordered keys (BLOCK) and values (BLOCK).
var<workgroup> smem: array<u32, {{SMEM}}>;
var<workgroup> digit_base: array<u32, 16>;

fn digit_of(key: u32) -> u32 {
    return (key >> params.shift) & params.digit_mask;
}

@compute @workgroup_size({{WG}})
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
#if HAS_SUBGROUPS
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_size) sg_size: u32,
#endif
) {
#if !HAS_SUBGROUPS
    let sg_lane = 0u;
    let sg_size = 1u;
#endif
    let block = linear_workgroup_id(wid, nwg);
    let block_start = block * BLOCK;
    var block_len = 0u;
    if (block_start < params.count) {
        block_len = min(BLOCK, params.count - block_start);
    }

    // 1. Per-invocation digit counters.
    for (var r = 0u; r < ROWS; r++) {
        smem[r * WG + lid] = 0u;
    }
    var k: array<u32, EPT>;
    var v: array<u32, EPT>;
    var rank: array<u32, EPT>;   // #earlier keys of this chunk with the same digit, then the block rank
    let base = lid * EPT;
    for (var j = 0u; j < EPT; j++) {
        let i = base + j;
        if (i < block_len) {
            k[j] = keys_in[block_start + i];
            v[j] = values_in[block_start + i];
            let d = digit_of(k[j]);
            let cell = (d & 7u) * WG + lid;
            let half = (d >> 3u) * 16u;
            let c = smem[cell];
            rank[j] = (c >> half) & 0xffffu;
            smem[cell] = c + (1u << half);
        }
    }
    workgroupBarrier();

    // 2. Exclusive scan of the packed counters, row-major (ROWS * WG = ROWS cells per invocation).
    var own = 0u;
    for (var c = 0u; c < ROWS; c++) {
        own += smem[lid * ROWS + c];
    }
    let scan = workgroup_exclusive_scan(lid, own, sg_lane, sg_size);
    var running = scan.x;
    for (var c = 0u; c < ROWS; c++) {
        let x = smem[lid * ROWS + c];
        smem[lid * ROWS + c] = running;
        running += x;
    }
    let low_total = scan.y & 0xffffu;   // keys of this block with digit < 8
    workgroupBarrier();

    if (lid < 16u && block < params.num_blocks) {
        let d = lid;
        let half = (d >> 3u) * 16u;
        var local_start = (smem[(d & 7u) * WG] >> half) & 0xffffu;
        if (d >= 8u) {
            local_start += low_total;
        }
        let slot = d * params.num_blocks + block;
        // Digits above digit_mask have zero count; their base is never used.
        digit_base[d] = offsets[slot] - counts[slot] - local_start;
    }
    for (var j = 0u; j < EPT; j++) {
        if (base + j < block_len) {
            let d = digit_of(k[j]);
            let half = (d >> 3u) * 16u;
            var r = ((smem[(d & 7u) * WG + lid] >> half) & 0xffffu) + rank[j];
            if (d >= 8u) {
                r += low_total;
            }
            rank[j] = r;
        }
    }
    workgroupBarrier();

    // 3. Reorder through workgroup memory, then write runs of equal digits.
    for (var j = 0u; j < EPT; j++) {
        if (base + j < block_len) {
            smem[rank[j]] = k[j];
            smem[BLOCK + rank[j]] = v[j];
        }
    }
    workgroupBarrier();
    for (var j = 0u; j < EPT; j++) {
        let i = j * WG + lid;
        if (i < block_len) {
            let key = smem[i];
            let dst = digit_base[digit_of(key)] + i;
            keys_out[dst] = key;
            values_out[dst] = smem[BLOCK + i];
        }
    }
}
