// Radix sort, pass step 3: stable scatter of one block's (key, value) pairs.
//
// Invocation t holds keys b*BLOCK + t*EPT + [0, EPT) of block b and walks them
// in order, so ranking by (digit, invocation, position) is stable. For each
// key we need its local rank: #keys of the block with a smaller digit + #keys
// with the same digit held by earlier invocations + #earlier keys of its own
// chunk with the same digit.
//
// With subgroups (HAS_SUBGROUPS), all in registers: each invocation counts its
// digits in a vec4 of 8-bit counters (digit d: component d >> 2, byte d & 3),
// widens them to two vec4s of 16-bit halves ("even": digits 4r and 4r+2 of
// component r; "odd": 4r+1 and 4r+3), and the workgroup exclusive scan of
// those 8 words (subgroupExclusiveAdd, then the subgroup totals scanned by
// subgroup 0; any subgroup size) gives the middle term for all 16 digits at
// once; the block's digit totals give the first.
//
// Without subgroups, in workgroup memory: each invocation counts into its own
// column of `smem` (8 rows x WG, digit d in row d & 7, 16-bit half d >> 3);
// the 8*WG packed counters are exclusive-scanned row-major (raking, 8 per
// invocation, plus a workgroup scan); the low half of cell (d, t) is then
// #keys with digit < d + #keys with digit d in invocations < t (d < 8), the
// high half the same counted from digit 8.
//
// Both then reorder the pairs by local rank through workgroup memory and write
// runs of equal digits with consecutive invocations on consecutive slots:
// out[global_start(d, b) + local_rank - local_start(d)], where
// global_start(d, b) = offsets[d*num_blocks + b] - counts[d*num_blocks + b]
// (offsets = inclusive scan of counts, digit-major). A block holds < 65536
// keys, so 16-bit halves never overflow.
#include "common.wgsl"
#include "prefix_sum_workgroup.wgsl"

// declared once in brushpy/render/sort.py (SORT_PARAMS)
#struct Params

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

// Ranking scratch first (counters, or subgroup totals), then the reordered
// keys (BLOCK) and values (BLOCK). SMEM >= max(ROWS * WG, 2 * BLOCK).
var<workgroup> smem: array<u32, {{SMEM}}>;
var<workgroup> digit_base: array<u32, 16>;
#if HAS_SUBGROUPS
var<workgroup> digit_start: array<vec4<u32>, 2>;   // block-local start of each digit, (even, odd) packing
#endif

fn digit_of(key: u32) -> u32 {
    return (key >> params.shift) & params.digit_mask;
}

// 16-bit field of digit d in the (even, odd) packing described above.
fn packed_field(even: vec4<u32>, odd: vec4<u32>, d: u32) -> u32 {
    let word = select(even[d >> 2u], odd[d >> 2u], (d & 1u) == 1u);
    return (word >> (((d >> 1u) & 1u) * 16u)) & 0xffffu;
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
    let block = linear_workgroup_id(wid, nwg);
    let block_start = block * BLOCK;
    var block_len = 0u;
    if (block_start < params.count) {
        block_len = min(BLOCK, params.count - block_start);
    }
    var k: array<u32, EPT>;
    var v: array<u32, EPT>;
    var rank: array<u32, EPT>;   // #earlier keys of this chunk with the same digit, then the block rank
    let base = lid * EPT;

#if HAS_SUBGROUPS
    // 1. Count this chunk's digits in registers.
    var c = vec4<u32>(0u);
    for (var j = 0u; j < EPT; j++) {
        if (base + j < block_len) {
            k[j] = keys_in[block_start + base + j];
            v[j] = values_in[block_start + base + j];
            let d = digit_of(k[j]);
            let byte_shift = (d & 3u) * 8u;
            rank[j] = (c[d >> 2u] >> byte_shift) & 0xffu;
            c += select(vec4<u32>(0u), vec4<u32>(1u << byte_shift), vec4<u32>(d >> 2u) == vec4<u32>(0u, 1u, 2u, 3u));
        }
    }
    let even = c & vec4<u32>(0x00ff00ffu);
    let odd = (c >> vec4<u32>(8u)) & vec4<u32>(0x00ff00ffu);

    // 2. Workgroup exclusive scan of (even, odd): subgroups, then subgroup totals.
    let inc_even = subgroupInclusiveAdd(even);
    let inc_odd = subgroupInclusiveAdd(odd);
    let sg_id = lid / sg_size;
    let num_sg = (WG + sg_size - 1u) / sg_size;
    if (sg_lane == sg_size - 1u || lid == WG - 1u) {
        for (var w = 0u; w < 4u; w++) {
            smem[sg_id * 8u + w] = inc_even[w];
            smem[sg_id * 8u + 4u + w] = inc_odd[w];
        }
    }
    workgroupBarrier();
    if (lid < sg_size) {
        var carry_even = vec4<u32>(0u);
        var carry_odd = vec4<u32>(0u);
        for (var first = 0u; first < num_sg; first += sg_size) {
            let s = first + lid;
            var te = vec4<u32>(0u);
            var to = vec4<u32>(0u);
            if (s < num_sg) {
                te = vec4<u32>(smem[s * 8u], smem[s * 8u + 1u], smem[s * 8u + 2u], smem[s * 8u + 3u]);
                to = vec4<u32>(smem[s * 8u + 4u], smem[s * 8u + 5u], smem[s * 8u + 6u], smem[s * 8u + 7u]);
            }
            let pe = carry_even + subgroupExclusiveAdd(te);
            let po = carry_odd + subgroupExclusiveAdd(to);
            if (s < num_sg) {
                for (var w = 0u; w < 4u; w++) {
                    smem[s * 8u + w] = pe[w];
                    smem[s * 8u + 4u + w] = po[w];
                }
            }
            carry_even += subgroupAdd(te);
            carry_odd += subgroupAdd(to);
        }
        if (lid == 0u) {
            // Block-local start of every digit: exclusive scan of the 16 digit totals, same packing.
            var start_even = vec4<u32>(0u);
            var start_odd = vec4<u32>(0u);
            var acc = 0u;
            for (var d = 0u; d < 16u; d++) {
                let half = ((d >> 1u) & 1u) * 16u;
                let r = d >> 2u;
                if ((d & 1u) == 1u) {
                    start_odd[r] |= acc << half;
                } else {
                    start_even[r] |= acc << half;
                }
                acc += packed_field(carry_even, carry_odd, d);
            }
            digit_start[0] = start_even;
            digit_start[1] = start_odd;
        }
    }
    workgroupBarrier();
    let sg_prefix_even = vec4<u32>(smem[sg_id * 8u], smem[sg_id * 8u + 1u], smem[sg_id * 8u + 2u], smem[sg_id * 8u + 3u]);
    let sg_prefix_odd = vec4<u32>(smem[sg_id * 8u + 4u], smem[sg_id * 8u + 5u], smem[sg_id * 8u + 6u], smem[sg_id * 8u + 7u]);
    let start_even = digit_start[0];
    let start_odd = digit_start[1];

    // Rank base of each digit for this invocation: digit start + earlier invocations' count.
    let base_even = start_even + sg_prefix_even + inc_even - even;
    let base_odd = start_odd + sg_prefix_odd + inc_odd - odd;
    if (lid < 16u && block < params.num_blocks) {
        let slot = lid * params.num_blocks + block;
        digit_base[lid] = offsets[slot] - counts[slot] - packed_field(start_even, start_odd, lid);
    }
    for (var j = 0u; j < EPT; j++) {
        if (base + j < block_len) {
            rank[j] += packed_field(base_even, base_odd, digit_of(k[j]));
        }
    }
#else
    // 1. Per-invocation digit counters in this invocation's column of smem.
    for (var r = 0u; r < ROWS; r++) {
        smem[r * WG + lid] = 0u;
    }
    for (var j = 0u; j < EPT; j++) {
        if (base + j < block_len) {
            k[j] = keys_in[block_start + base + j];
            v[j] = values_in[block_start + base + j];
            let d = digit_of(k[j]);
            let cell = (d & 7u) * WG + lid;
            let half = (d >> 3u) * 16u;
            let cnt = smem[cell];
            rank[j] = (cnt >> half) & 0xffffu;
            smem[cell] = cnt + (1u << half);
        }
    }
    workgroupBarrier();

    // 2. Exclusive scan of the packed counters, row-major (ROWS cells per invocation).
    var own = 0u;
    for (var cell = 0u; cell < ROWS; cell++) {
        own += smem[lid * ROWS + cell];
    }
    let scan = workgroup_exclusive_scan(lid, own, 0u, 1u);
    var running = scan.x;
    for (var cell = 0u; cell < ROWS; cell++) {
        let x = smem[lid * ROWS + cell];
        smem[lid * ROWS + cell] = running;
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
#endif
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
