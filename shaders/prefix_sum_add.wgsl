// Prefix sum, level step 2: add the inclusive scan of the preceding blocks'
// totals (scanned_sums[block - 1]) to every value of blocks 1, 2, ...
#include "common.wgsl"

// declared once in brushpy/render/prefix_sum.py (SCAN_PARAMS)
#struct Params

const WG: u32 = {{WG}}u;
const EPT: u32 = {{EPT}}u;
const BLOCK: u32 = WG * EPT;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> data: array<u32>;
@group(0) @binding(2) var<storage, read> scanned_sums: array<u32>;

@compute @workgroup_size({{WG}})
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Workgroup b handles block b + 1 (block 0 needs nothing).
    let block = linear_workgroup_id(wid, nwg) + 1u;
    if (block >= params.num_blocks) {
        return;
    }
    let carry = scanned_sums[block - 1u];
    // Strided so that neighbouring invocations touch neighbouring values.
    for (var j = 0u; j < EPT; j++) {
        let i = block * BLOCK + j * WG + lid;
        if (i < params.count) {
            data[i] += carry;
        }
    }
}
