// Prefix sum, level step 1: inclusive scan inside blocks of WG*EPT u32 values.
// Each invocation scans EPT consecutive values serially; the invocation totals
// are scanned across the workgroup; each block's total goes to block_sums.
// IN_PLACE: one read_write `data` binding instead of input/output.
#include "common.wgsl"
#include "prefix_sum_workgroup.wgsl"

// declared once in brushpy/render/prefix_sum.py (SCAN_PARAMS)
#struct Params

const WG: u32 = {{WG}}u;
const EPT: u32 = {{EPT}}u;
const BLOCK: u32 = WG * EPT;

@group(0) @binding(0) var<uniform> params: Params;
#if IN_PLACE
@group(0) @binding(1) var<storage, read_write> data: array<u32>;
@group(0) @binding(2) var<storage, read_write> block_sums: array<u32>;
fn load_value(i: u32) -> u32 { return data[i]; }
fn store_value(i: u32, v: u32) { data[i] = v; }
#else
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;
@group(0) @binding(3) var<storage, read_write> block_sums: array<u32>;
fn load_value(i: u32) -> u32 { return input[i]; }
fn store_value(i: u32, v: u32) { output[i] = v; }
#endif

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
    let base = block * BLOCK + lid * EPT;
    var partial: array<u32, EPT>;
    var running = 0u;
    for (var j = 0u; j < EPT; j++) {
        let i = base + j;
        if (i < params.count) {
            running += load_value(i);
        }
        partial[j] = running;
    }
    let scan = workgroup_exclusive_scan(lid, running, sg_lane, sg_size);
    for (var j = 0u; j < EPT; j++) {
        let i = base + j;
        if (i < params.count) {
            store_value(i, partial[j] + scan.x);
        }
    }
    if (lid == 0u && block < params.num_blocks) {
        block_sums[block] = scan.y;
    }
}
