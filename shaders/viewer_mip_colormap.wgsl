// Viewer colormap of a single-channel image (brushpy/viewer/mip_view.py): value -> colour.
// Used for the soft-MIP image (m = mip[4i], the renderer writes (m, m, m, 1); STRIDE 4,
// offset 0) and for the depth view (m = depth[i], scene units; STRIDE 1, offset = near,
// gain = 1 / (far - near); brushpy/viewer/view.py).
//
// For each pixel with value m = mip[STRIDE * i]:
//   m <= 0 (no Gaussian contributes): the background colour;
//   else v = clamp(gain * (m - offset), 0, 1) and the colour is the piecewise-linear colormap
//   through `num_knots` evenly spaced knots (knot k at v = k / (num_knots - 1)).
// Output: rgba [H, W, 4] with alpha 1, read by the viewer's blit.
#include "common.wgsl"

// Params: brushpy/viewer/mip_view.py COLORMAP_PARAMS
#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> mip: array<f32>;
@group(0) @binding(2) var<storage, read_write> rgba: array<f32>;

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let i = thread_index(inv);
    if i >= params.count {
        return;
    }
    let m = mip[{{STRIDE}}u * i];
    var c = params.background.xyz;
    if m > 0.0 {
        let v = clamp(params.gain * (m - params.offset), 0.0, 1.0);
        let segs = f32(params.num_knots - 1u);
        let x = v * segs;
        let k = min(u32(floor(x)), params.num_knots - 2u);
        let f = x - f32(k);
        c = mix(params.knots[k].xyz, params.knots[k + 1u].xyz, f);
    }
    rgba[4u * i] = c.x;
    rgba[4u * i + 1u] = c.y;
    rgba[4u * i + 2u] = c.z;
    rgba[4u * i + 3u] = 1.0;
}
