// Mip-Splatting's 3D smoothing filter, stage 2: the filtered splat the renderer sees,
// and the VJP of that map (entry point `backward`).
//
// With f = min_scale[i] (a constant; f <= 0 leaves the splat unchanged) and
// u_k = f² / s_k² (s = exp(log_scales)):
//   log_scales'_k = log_scales_k + ½ log(1 + u_k)        (s'² = s² + f²)
//   c = Π_k s_k / s'_k = exp(L),  L = -½ Σ_k log(1 + u_k)  (sqrt(det(s²)/det(s²+f²)))
//   raw'          = logit(c · sigmoid(raw)) = raw + L - softplus(raw + log(1 - c))
// (Mip-Splatting's get_scaling_with_3D_filter / get_opacity_with_3D_filter; Brush's
// fold_min_scale, without its clamp of the opacity to [1e-6, 1 - 1e-6], which the
// logit form above does not need). Its VJP:
//   ∂log_scales'_k/∂log_scales_k = 1 / (1 + u_k),  ∂L/∂log_scales_k = u_k / (1 + u_k)
//   ∂raw'/∂raw = 1 / (1 + (1 - c) e^raw) = sigmoid(-(raw + log(1 - c)))
//   ∂raw'/∂L   = 1 / (1 - c·sigmoid(raw)) = exp(softplus(raw) - softplus(raw + log(1 - c)))
// Reference: tests/reference/filter3d.py.
#include "common.wgsl"

// Params: brushpy/train/filter3d.py APPLY_PARAMS
#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> min_scale: array<f32>;        // [N]
@group(0) @binding(2) var<storage, read> log_scales: array<f32>;       // [N,3]
@group(0) @binding(3) var<storage, read> raw_opacities: array<f32>;    // [N]
// main: out_log_scales [N,3], out_raw_opacities [N] (the filtered values)
// backward: in: the gradients w.r.t. the filtered values; out: w.r.t. the raw ones (in place)
@group(0) @binding(4) var<storage, read_write> io_log_scales: array<f32>;
@group(0) @binding(5) var<storage, read_write> io_raw_opacities: array<f32>;

const WG: u32 = 256u;

fn softplus(x: f32) -> f32 {
    return max(x, 0.0) + log(1.0 + exp(-abs(x)));
}

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// Per splat: d_k = 2 (log_scales_k - log f), so that u_k = exp(-d_k),
// ½ log(1 + u_k) = ½ softplus(-d_k), 1/(1 + u_k) = sigmoid(d_k), u_k/(1 + u_k) =
// sigmoid(-d_k): stable for any scale (no exp(-2 log_scales) overflow).
struct Fold {
    enabled: bool,    // f > 0
    d: vec3<f32>,
    L: f32,
    a: f32,          // raw + log(1 - c)
    one_minus_c: f32,
}

fn fold(i: u32) -> Fold {
    var out: Fold;
    let f = min_scale[i];
    out.enabled = f > 0.0;
    if (!out.enabled) {
        return out;
    }
    let ls = vec3<f32>(log_scales[3u * i], log_scales[3u * i + 1u], log_scales[3u * i + 2u]);
    let d = 2.0 * (ls - vec3<f32>(log(f)));
    out.d = d;
    out.L = -0.5 * (softplus(-d.x) + softplus(-d.y) + softplus(-d.z));
    // 1 - c = -expm1(L), with a short series where exp would cancel
    var omc = 1.0 - exp(out.L);
    if (out.L > -1e-3) {
        omc = -out.L * (1.0 + 0.5 * out.L * (1.0 + out.L / 3.0));
    }
    out.one_minus_c = omc;
    out.a = raw_opacities[i] + log(max(omc, 1e-37));
    return out;
}

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.num_splats) {
        return;
    }
    let fo = fold(i);
    let r = raw_opacities[i];
    if (!fo.enabled) {
        for (var k = 0u; k < 3u; k++) {
            io_log_scales[3u * i + k] = log_scales[3u * i + k];
        }
        io_raw_opacities[i] = r;
        return;
    }
    for (var k = 0u; k < 3u; k++) {
        io_log_scales[3u * i + k] = log_scales[3u * i + k] + 0.5 * softplus(-fo.d[k]);
    }
    var sp = 0.0;
    if (fo.one_minus_c > 0.0) {
        sp = softplus(fo.a);
    }
    io_raw_opacities[i] = r + fo.L - sp;
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear_workgroup_id(wid, nwg) * WG + lid;
    if (i >= params.num_splats) {
        return;
    }
    let fo = fold(i);
    if (!fo.enabled) {
        return;  // identity: the gradients pass unchanged
    }
    let r = raw_opacities[i];
    let v_raw_f = io_raw_opacities[i];
    var d_raw = 1.0;
    var d_L = 1.0;
    if (fo.one_minus_c > 0.0) {
        d_raw = sigmoid(-fo.a);
        d_L = exp(softplus(r) - softplus(fo.a));
    }
    let v_L = v_raw_f * d_L;
    for (var k = 0u; k < 3u; k++) {
        let dk = fo.d[k];
        io_log_scales[3u * i + k] = io_log_scales[3u * i + k] * sigmoid(dk) + v_L * sigmoid(-dk);
    }
    io_raw_opacities[i] = v_raw_f * d_raw;
}
