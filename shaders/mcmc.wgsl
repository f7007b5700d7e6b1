// --strategy mcmc ("3D Gaussian Splatting as Markov Chain Monte Carlo", Kheradmand et al. 2024,
// as gsplat's MCMCStrategy). One entry per define; brushpy/train/mcmc.py records them and
// brushpy/train/mcmc_reference.py is the NumPy model of the same rules.
//
// PAIR_COPY, one thread per pair j = (dst, src, n) of pairs[3j..3j+2]:
//   row dst becomes a copy of row src, with eq. 9's correction for n copies:
//     o' = clamp(1 − (1 − o)^(1/n), min_opacity, max_opacity)
//     s' = s · o / Σ_{i=1..n} Σ_{k=0..i−1} C(i−1,k) (−1)^k o'^(k+1) / √(k+1)   (s kept if the sum ≤ 0)
//   stored as raw = ln(o' / (1 − o')) and log_scale + ln(o / sum); reset[dst] = reset[src] = 1.
//   dst rows are never src rows (dead or new rows onto live ones), so reads see the old values.
// PAIR_SOURCE (after PAIR_COPY): the sources take the corrected values from their copies
//   (every copy of one source holds the same values, so repeated writes agree).
// NOISE, one thread per splat: means += clamp(Σ ε · sigmoid(−K (o − T)) · scale, ±clamp_to),
//   Σ = R diag(s)² Rᵀ, ε ~ N(0, I) from the hash RNG (Box–Muller), keyed by (seed, step).
// REGULARIZE, one thread per splat: the gradients of
//   opacity_w · Σ sigmoid(raw) + scale_w · Σ exp(log_scales)   (w = reg / count: gsplat's means),
//   and per-workgroup partial sums of the two terms (summed by loss_reduce.wgsl).

#include "common.wgsl"
#include "refine_common.wgsl"

#if PAIR_COPY
#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> pairs: array<u32>;
@group(0) @binding(2) var<storage, read> binoms: array<f32>;
@group(0) @binding(3) var<storage, read_write> means: array<f32>;
@group(0) @binding(4) var<storage, read_write> rotations: array<f32>;
@group(0) @binding(5) var<storage, read_write> log_scales: array<f32>;
@group(0) @binding(6) var<storage, read_write> sh_coeffs: array<f32>;
@group(0) @binding(7) var<storage, read_write> raw_opacities: array<f32>;
@group(0) @binding(8) var<storage, read_write> reset: array<u32>;

// (o', s'/s) for a splat of opacity o that ends as n copies (eq. 9).
fn corrected(o: f32, n: u32) -> vec2<f32> {
    var new_o = 1.0;
    let keep = 1.0 - o;
    if (keep > 0.0) {
        new_o = 1.0 - pow(keep, 1.0 / f32(n));
    }
    new_o = clamp(new_o, params.min_opacity, params.max_opacity);
    var denom = 0.0;
    for (var i = 1u; i <= n; i = i + 1u) {
        var p = new_o;  // o'^(k+1)
        for (var k = 0u; k < i; k = k + 1u) {
            let sign = select(1.0, -1.0, (k & 1u) == 1u);
            denom = denom + binoms[(i - 1u) * params.n_max + k] * sign * inverseSqrt(f32(k + 1u)) * p;
            p = p * new_o;
        }
    }
    var coeff = 1.0;
    if (denom > 0.0) {
        coeff = o / denom;
    }
    return vec2<f32>(new_o, coeff);
}

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let j = thread_index(inv);
    if (j >= params.count) {
        return;
    }
    let dst = pairs[3u * j];
    let src = pairs[3u * j + 1u];
    let n = clamp(pairs[3u * j + 2u], 1u, params.n_max);
    let c = corrected(sigmoid(raw_opacities[src]), n);
    for (var a = 0u; a < 3u; a = a + 1u) {
        means[3u * dst + a] = means[3u * src + a];
        log_scales[3u * dst + a] = log_scales[3u * src + a] + log(c.y);
    }
    for (var a = 0u; a < 4u; a = a + 1u) {
        rotations[4u * dst + a] = rotations[4u * src + a];
    }
    for (var a = 0u; a < params.sh_width; a = a + 1u) {
        sh_coeffs[params.sh_width * dst + a] = sh_coeffs[params.sh_width * src + a];
    }
    raw_opacities[dst] = log(c.x / (1.0 - c.x));
    reset[dst] = 1u;
    reset[src] = 1u;
}
#endif

#if PAIR_SOURCE
#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> pairs: array<u32>;
@group(0) @binding(2) var<storage, read_write> log_scales: array<f32>;
@group(0) @binding(3) var<storage, read_write> raw_opacities: array<f32>;

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let j = thread_index(inv);
    if (j >= params.count) {
        return;
    }
    let dst = pairs[3u * j];
    let src = pairs[3u * j + 1u];
    for (var a = 0u; a < 3u; a = a + 1u) {
        log_scales[3u * src + a] = log_scales[3u * dst + a];
    }
    raw_opacities[src] = raw_opacities[dst];
}
#endif

#if NOISE
#include "quat.wgsl"
#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> raw_opacities: array<f32>;
@group(0) @binding(2) var<storage, read> rotations: array<f32>;
@group(0) @binding(3) var<storage, read> log_scales: array<f32>;
@group(0) @binding(4) var<storage, read_write> means: array<f32>;

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.num_splats) {
        return;
    }
    let o = sigmoid(raw_opacities[i]);
    let w = params.scale / (1.0 + exp(params.gate_k * (o - params.gate_t)));
    if (!(w > 0.0)) {
        return;
    }
    let q = normalize_quat(vec4<f32>(rotations[4u * i], rotations[4u * i + 1u], rotations[4u * i + 2u],
                                     rotations[4u * i + 3u]));
    let r = quat_to_mat(q);
    let s2 = exp(2.0 * vec3<f32>(log_scales[3u * i], log_scales[3u * i + 1u], log_scales[3u * i + 2u]));
    let n01 = box_muller(random_unit(params.key, 4u * i), random_unit(params.key, 4u * i + 1u));
    let n23 = box_muller(random_unit(params.key, 4u * i + 2u), random_unit(params.key, 4u * i + 3u));
    let eps = vec3<f32>(n01, n23.x);
    let d = r * (s2 * (transpose(r) * eps)) * w;
    if (!(is_finite_f32(d.x) && is_finite_f32(d.y) && is_finite_f32(d.z))) {
        return;
    }
    let step = clamp(d, vec3<f32>(-params.clamp_to), vec3<f32>(params.clamp_to));
    means[3u * i + 0u] += step.x;
    means[3u * i + 1u] += step.y;
    means[3u * i + 2u] += step.z;
}
#endif

#if REGULARIZE
#include "reduce.wgsl"
#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> raw_opacities: array<f32>;
@group(0) @binding(2) var<storage, read> log_scales: array<f32>;
@group(0) @binding(3) var<storage, read_write> v_raw_opacities: array<f32>;
@group(0) @binding(4) var<storage, read_write> v_log_scales: array<f32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let i = thread_index(inv);
    var terms = vec2<f32>(0.0, 0.0);
    if (i < params.count) {
        let o = sigmoid(raw_opacities[i]);
        v_raw_opacities[i] = params.opacity_w * o * (1.0 - o);
        terms.x = params.opacity_w * o;
        for (var a = 0u; a < 3u; a = a + 1u) {
            let e = exp(log_scales[3u * i + a]);
            v_log_scales[3u * i + a] = params.scale_w * e;
            terms.y = terms.y + params.scale_w * e;
        }
    }
    let total = workgroup_sum2(inv.lid, terms);
    if (inv.lid == 0u) {
        let g = workgroup_index(inv);
        partials[2u * g] = total.x;
        partials[2u * g + 1u] = total.y;
    }
}
#endif
