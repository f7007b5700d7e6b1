// Workgroup-wide exclusive scan of one u32 per invocation, shared by the
// prefix-sum and radix-sort kernels. Include after defining nothing: the
// includer supplies the {{WG}} template value (workgroup size, a power of two).
//
// workgroup_exclusive_scan(lid, value, sg_lane, sg_size) -> vec2(exclusive, total)
//   Every invocation of the workgroup must call it (uniform control flow).
//   With HAS_SUBGROUPS it scans inside each subgroup (subgroupInclusiveAdd),
//   scans the subgroup totals in subgroup 0 and adds them back; any subgroup
//   size works (it is passed in from @builtin(subgroup_size), never assumed).
//   Subgroups are taken to hold consecutive local_invocation_index values
//   (lid / sg_size is the subgroup's index), as on every Vulkan/Metal/D3D12
//   compute implementation. Without subgroups it is a Hillis-Steele scan in
//   workgroup memory; sg_lane and sg_size are then ignored.
//   Every workgroup-memory cell is written before it is read.

var<workgroup> wg_scan_buf: array<u32, {{WG}}>;
var<workgroup> wg_scan_total: u32;

fn workgroup_exclusive_scan(lid: u32, value: u32, sg_lane: u32, sg_size: u32) -> vec2<u32> {
    let wg = {{WG}}u;
    // Earlier calls may still be reading the scratch cells.
    workgroupBarrier();
#if HAS_SUBGROUPS
    let incl = subgroupInclusiveAdd(value);
    let sg_id = lid / sg_size;
    let num_sg = (wg + sg_size - 1u) / sg_size;
    if (sg_lane == sg_size - 1u || lid == wg - 1u) {
        wg_scan_buf[sg_id] = incl;
    }
    workgroupBarrier();
    if (lid < sg_size) {
        // Subgroup 0 scans the subgroup totals, sg_size at a time.
        var carry = 0u;
        for (var base = 0u; base < num_sg; base += sg_size) {
            let i = base + lid;
            var s = 0u;
            if (i < num_sg) {
                s = wg_scan_buf[i];
            }
            let si = subgroupInclusiveAdd(s);
            if (i < num_sg) {
                wg_scan_buf[i] = carry + si - s;
            }
            carry += subgroupAdd(s);
        }
        if (lid == 0u) {
            wg_scan_total = carry;
        }
    }
    workgroupBarrier();
    return vec2<u32>(wg_scan_buf[sg_id] + incl - value, wg_scan_total);
#else
    wg_scan_buf[lid] = value;
    workgroupBarrier();
    for (var offset = 1u; offset < wg; offset = offset << 1u) {
        var t = 0u;
        if (lid >= offset) {
            t = wg_scan_buf[lid - offset];
        }
        workgroupBarrier();
        wg_scan_buf[lid] += t;
        workgroupBarrier();
    }
    return vec2<u32>(wg_scan_buf[lid] - value, wg_scan_buf[wg - 1u]);
#endif
}
