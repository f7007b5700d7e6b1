// Per-image affine colour transform of a rendered image (brushpy/train/exposure.py says the
// model, its source and the conventions):
//
//   out[p].rgb = A · image[p].rgb + b,   out[p].a = image[p].a
//
// P = [A | b], 3x4 row-major, is row `params.row` of `exposure` [num_images, 12]:
// P[c][j] at 12·row + 4c + j (j = 3 is b[c]).
//
// `forward`: one pixel per invocation.
// `backward`: v_image[p].rgb = Aᵀ · v_out[p].rgb, v_image[p].a = v_out[p].a, and per workgroup the
//   12 partial sums of dL/dP: v_out[c]·rgb[j] (j < 3) and v_out[c] (j = 3), at partials[12·wg + 4c + j].
// `reduce`: one workgroup sums the partials into grad[12·row + k] and adds the gradient of the
//   L2 pull towards the identity, 2·reg_weight·(P − [I | 0]). Other rows of grad are left as they
//   are (the caller clears them).

#include "common.wgsl"
#include "reduce.wgsl"

// declared once in brushpy/train/exposure.py (EXPOSURE_PARAMS)
#struct ExposureParams

@group(0) @binding(0) var<uniform> params: ExposureParams;
@group(0) @binding(1) var<storage, read> exposure: array<f32>;
@group(0) @binding(2) var<storage, read> image: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> v_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> v_image: array<f32>;
@group(0) @binding(6) var<storage, read_write> partials: array<f32>;
@group(0) @binding(7) var<storage, read_write> grad: array<f32>;

// Row c of A (c = 0, 1, 2) of this step's image.
fn a_row(c: u32) -> vec3<f32> {
    let o = 12u * params.row + 4u * c;
    return vec3<f32>(exposure[o], exposure[o + 1u], exposure[o + 2u]);
}

fn b_vec() -> vec3<f32> {
    let o = 12u * params.row;
    return vec3<f32>(exposure[o + 3u], exposure[o + 7u], exposure[o + 11u]);
}

@compute @workgroup_size(256)
fn forward(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.pixels) {
        return;
    }
    let rgb = vec3<f32>(image[4u * i], image[4u * i + 1u], image[4u * i + 2u]);
    let res = vec3<f32>(dot(a_row(0u), rgb), dot(a_row(1u), rgb), dot(a_row(2u), rgb)) + b_vec();
    out[4u * i] = res.x;
    out[4u * i + 1u] = res.y;
    out[4u * i + 2u] = res.z;
    out[4u * i + 3u] = image[4u * i + 3u];
}

@compute @workgroup_size(256)
fn backward(inv: Thread) {
    let i = thread_index(inv);
    var rgb = vec3<f32>(0.0);
    var v = vec3<f32>(0.0);
    if (i < params.pixels) {
        rgb = vec3<f32>(image[4u * i], image[4u * i + 1u], image[4u * i + 2u]);
        v = vec3<f32>(v_out[4u * i], v_out[4u * i + 1u], v_out[4u * i + 2u]);
        // Aᵀ v: column j of A dotted with v
        let g = v.x * a_row(0u) + v.y * a_row(1u) + v.z * a_row(2u);
        v_image[4u * i] = g.x;
        v_image[4u * i + 1u] = g.y;
        v_image[4u * i + 2u] = g.z;
        v_image[4u * i + 3u] = v_out[4u * i + 3u];
    }
    // the 12 entries of v ⊗ (rgb, 1), summed over the workgroup two at a time (uniform control flow)
    let r0 = workgroup_sum2(inv.lid, vec2<f32>(v.x * rgb.x, v.x * rgb.y));
    let r1 = workgroup_sum2(inv.lid, vec2<f32>(v.x * rgb.z, v.x));
    let r2 = workgroup_sum2(inv.lid, vec2<f32>(v.y * rgb.x, v.y * rgb.y));
    let r3 = workgroup_sum2(inv.lid, vec2<f32>(v.y * rgb.z, v.y));
    let r4 = workgroup_sum2(inv.lid, vec2<f32>(v.z * rgb.x, v.z * rgb.y));
    let r5 = workgroup_sum2(inv.lid, vec2<f32>(v.z * rgb.z, v.z));
    if (inv.lid == 0u) {
        let o = 12u * workgroup_index(inv);
        partials[o] = r0.x;
        partials[o + 1u] = r0.y;
        partials[o + 2u] = r1.x;
        partials[o + 3u] = r1.y;
        partials[o + 4u] = r2.x;
        partials[o + 5u] = r2.y;
        partials[o + 6u] = r3.x;
        partials[o + 7u] = r3.y;
        partials[o + 8u] = r4.x;
        partials[o + 9u] = r4.y;
        partials[o + 10u] = r5.x;
        partials[o + 11u] = r5.y;
    }
}

@compute @workgroup_size(256)
fn reduce(@builtin(local_invocation_index) lid: u32) {
    var s: array<f32, 12>;
    for (var k = 0u; k < 12u; k++) {
        s[k] = 0.0;
    }
    for (var g = lid; g < params.groups; g += 256u) {
        for (var k = 0u; k < 12u; k++) {
            s[k] += partials[12u * g + k];
        }
    }
    var total: array<f32, 12>;
    for (var k = 0u; k < 12u; k += 2u) {
        let pair = workgroup_sum2(lid, vec2<f32>(s[k], s[k + 1u]));
        total[k] = pair.x;
        total[k + 1u] = pair.y;
    }
    if (lid == 0u) {
        let o = 12u * params.row;
        for (var k = 0u; k < 12u; k++) {
            var ident = 0.0;
            if (k == 0u || k == 5u || k == 10u) {
                ident = 1.0;
            }
            grad[o + k] = total[k] + 2.0 * params.reg_weight * (exposure[o + k] - ident);
        }
    }
}
