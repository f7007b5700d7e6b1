// Radix sort, pass step 1: per-block digit histogram.
// Block b (WG*EPT keys; invocation t takes keys b*BLOCK + t*EPT + [0, EPT)) counts
// how many of its keys have each 4-bit digit d = (key >> shift) & digit_mask and
// writes counts[d * num_blocks + b] (digit-major, so an exclusive scan of `counts`
// gives every (digit, block) its first output slot).
//
// Counters: each invocation owns a column of `hist` (8 rows x WG); digit d counts
// in row d & 7, 16-bit half d >> 3 (two digits per u32, a block never exceeds
// 65535 keys). No atomics: nobody else writes an invocation's column.
#include "common.wgsl"

struct Params {
    count: u32,
    shift: u32,
    digit_mask: u32,
    num_blocks: u32,
}

const WG: u32 = {{WG}}u;
const EPT: u32 = {{EPT}}u;
const BLOCK: u32 = WG * EPT;
const ROWS: u32 = 8u;              // 16 digits, two per u32
const SEG: u32 = WG / ROWS;        // invocations summing one row in the reduction

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> keys: array<u32>;
@group(0) @binding(2) var<storage, read_write> counts: array<u32>;

var<workgroup> hist: array<u32, {{HIST}}>;   // ROWS * WG
var<workgroup> partial: array<u32, {{WG}}>;

@compute @workgroup_size({{WG}})
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let block = linear_workgroup_id(wid, nwg);
    for (var r = 0u; r < ROWS; r++) {
        hist[r * WG + lid] = 0u;
    }
    let base = block * BLOCK + lid * EPT;
    for (var j = 0u; j < EPT; j++) {
        let i = base + j;
        if (i < params.count) {
            let d = (keys[i] >> params.shift) & params.digit_mask;
            let cell = (d & 7u) * WG + lid;
            hist[cell] += 1u << ((d >> 3u) * 16u);
        }
    }
    workgroupBarrier();
    // Row r is summed by invocations r*SEG .. r*SEG+SEG-1, ROWS entries each (SEG*ROWS == WG).
    let row = lid / SEG;
    let seg = lid % SEG;
    var s = 0u;
    for (var k = 0u; k < ROWS; k++) {
        s += hist[row * WG + seg * ROWS + k];
    }
    partial[lid] = s;
    workgroupBarrier();
    if (lid < ROWS && block < params.num_blocks) {
        var total = 0u;
        for (var k = 0u; k < SEG; k++) {
            total += partial[lid * SEG + k];
        }
        counts[lid * params.num_blocks + block] = total & 0xffffu;
        counts[(lid + 8u) * params.num_blocks + block] = total >> 16u;
    }
}
