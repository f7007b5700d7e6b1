// Inverse-depth L1 loss over the pixels with a sensor depth, and its gradient, fused
// (brushpy/loss/depth_loss.py says the formula, eps and the conventions):
//
//   valid[p] = gt[p] > 0  (and alpha[p] >= alpha_min when ALPHA_MASK)
//   L        = weight / N · sum_{valid p} |1 / max(d[p], eps) - 1 / gt[p]|,  N = #valid
//   dL/dd[p] = weight / N · sign(1/d - 1/gt) · (-1 / d²)  where d > eps, else 0
//
// `forward`: one pixel per invocation; writes sign(·)·(-1/d²) (0 off the valid set) into
// v_depth and per-workgroup partial pairs (sum of |·|, count of valid pixels)
// (reduce.wgsl). loss_reduce.wgsl sums the partials into state[2], state[3].
// `finalize`: k = weight / N (0 when N = 0); v_depth *= k; state[0] = k · state[2].

#include "common.wgsl"
#include "reduce.wgsl"

// declared once in brushpy/loss/depth_loss.py (DEPTH_LOSS_PARAMS)
#struct DepthLossParams

@group(0) @binding(0) var<uniform> params: DepthLossParams;
@group(0) @binding(1) var<storage, read> depth: array<f32>;
@group(0) @binding(2) var<storage, read> gt_depth: array<f32>;
@group(0) @binding(3) var<storage, read> alpha: array<f32>;
@group(0) @binding(4) var<storage, read_write> v_depth: array<f32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;
@group(0) @binding(6) var<storage, read_write> state: array<f32>;

@compute @workgroup_size(256)
fn forward(inv: Thread) {
    let i = thread_index(inv);
    var term = 0.0;
    var valid = 0.0;
    if (i < params.pixels) {
        let gt = gt_depth[i];
        var ok = gt > 0.0;
#if ALPHA_MASK
        ok = ok && alpha[i * params.alpha_stride + params.alpha_offset] >= params.alpha_min;
#endif
        var g = 0.0;
        if (ok) {
            let d = depth[i];
            var inv_d = 1.0 / params.eps;
            var dinv = 0.0;
            if (d > params.eps) {
                inv_d = 1.0 / d;
                dinv = -inv_d * inv_d;
            }
            let diff = inv_d - 1.0 / gt;
            term = abs(diff);
            valid = 1.0;
            g = sign(diff) * dinv;
        }
        v_depth[i] = g;
    }
    let s = workgroup_sum2(inv.lid, vec2<f32>(term, valid));
    if (inv.lid == 0u) {
        let wg = workgroup_index(inv);
        partials[2u * wg] = s.x;
        partials[2u * wg + 1u] = s.y;
    }
}

@compute @workgroup_size(256)
fn finalize(inv: Thread) {
    let i = thread_index(inv);
    let count = state[3];
    var k = 0.0;
    if (count > 0.0) {
        k = params.weight / count;
    }
    if (i < params.pixels) {
        v_depth[i] = v_depth[i] * k;
    }
    if (i == 0u) {
        state[0] = state[2] * k;
    }
}
