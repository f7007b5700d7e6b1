// Radix sort, pass step 1: per-block digit histogram.
// Block b (keys b*BLOCK .. b*BLOCK + BLOCK - 1) counts how many of its keys have
// each 4-bit digit d = (key >> shift) & digit_mask and writes
// counts[d * num_blocks + b] (digit-major, so a scan of `counts` gives every
// (digit, block) its output range).
//
// Order does not matter here, so invocation t reads keys t, t + WG, ...
// (coalesced) and counts them in registers: a vec4 of 8-bit counters, digit d
// in component d >> 2, byte d & 3 (EPT <= 255 keys per invocation). The
// counters are then widened to 16-bit halves (rows of `hist`, one column per
// invocation) and summed over the workgroup.
#include "common.wgsl"

// declared once in brushpy/render/sort.py (SORT_PARAMS)
#struct Params

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
    let block_start = block * BLOCK;
    var c = vec4<u32>(0u);
    for (var j = 0u; j < EPT; j++) {
        let i = block_start + j * WG + lid;
        if (i < params.count) {
            let d = (keys[i] >> params.shift) & params.digit_mask;
            let one = vec4<u32>(1u << ((d & 3u) * 8u));
            c += select(vec4<u32>(0u), one, vec4<u32>(d >> 2u) == vec4<u32>(0u, 1u, 2u, 3u));
        }
    }
    // Row r < 4: digits 4r (low half) and 4r + 2 (high half);
    // row r >= 4: digits 4(r-4) + 1 (low) and 4(r-4) + 3 (high).
    let even = c & vec4<u32>(0x00ff00ffu);
    let odd = (c >> vec4<u32>(8u)) & vec4<u32>(0x00ff00ffu);
    for (var r = 0u; r < 4u; r++) {
        hist[r * WG + lid] = even[r];
        hist[(r + 4u) * WG + lid] = odd[r];
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
        let d_low = 4u * (lid & 3u) + (lid >> 2u);
        counts[d_low * params.num_blocks + block] = total & 0xffffu;
        counts[(d_low + 2u) * params.num_blocks + block] = total >> 16u;
    }
}
