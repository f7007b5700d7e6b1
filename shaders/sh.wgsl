// Real spherical-harmonics basis up to degree 4 (Sloan's sign convention, as
// gsplat / INRIA 3DGS). Include with: #include "sh.wgsl"
//
// sh_basis(degree, dir) returns the (degree+1)^2 basis values for the unit
// direction `dir` in slots [0, (degree+1)^2); the other slots are zero.
// Colour of a splat = sum_k basis[k] * coeff[k] (per channel), to which the
// renderer adds 0.5 and clamps at 0. Constants: see tests/reference/render.py.

const SH_MAX_COEFFS: u32 = 25u;

const SH_C0: f32 = 0.28209479177387814;
const SH_C1: f32 = 0.4886025119029199;
const SH_C2_0: f32 = 1.0925484305920792;
const SH_C2_1: f32 = -1.0925484305920792;
const SH_C2_2: f32 = 0.31539156525252005;
const SH_C2_3: f32 = -1.0925484305920792;
const SH_C2_4: f32 = 0.5462742152960396;
const SH_C3_0: f32 = -0.5900435899266435;
const SH_C3_1: f32 = 2.890611442640554;
const SH_C3_2: f32 = -0.4570457994644658;
const SH_C3_3: f32 = 0.3731763325901154;
const SH_C3_4: f32 = -0.4570457994644658;
const SH_C3_5: f32 = 1.445305721320277;
const SH_C3_6: f32 = -0.5900435899266435;
const SH_C4_0: f32 = 2.5033429417967046;
const SH_C4_1: f32 = -1.7701307697799304;
const SH_C4_2: f32 = 0.9461746957575601;
const SH_C4_3: f32 = -0.6690465435572892;
const SH_C4_4: f32 = 0.10578554691520431;
const SH_C4_5: f32 = -0.6690465435572892;
const SH_C4_6: f32 = 0.47308734787878004;
const SH_C4_7: f32 = -1.7701307697799304;
const SH_C4_8: f32 = 0.6258357354491761;

fn sh_num_coeffs(degree: u32) -> u32 {
    return (degree + 1u) * (degree + 1u);
}

fn sh_basis(degree: u32, dir: vec3<f32>) -> array<f32, 25> {
    var b: array<f32, 25>;
    for (var k = 0u; k < SH_MAX_COEFFS; k++) {
        b[k] = 0.0;
    }
    b[0] = SH_C0;
    if (degree < 1u) {
        return b;
    }
    let x = dir.x;
    let y = dir.y;
    let z = dir.z;
    b[1] = -SH_C1 * y;
    b[2] = SH_C1 * z;
    b[3] = -SH_C1 * x;
    if (degree < 2u) {
        return b;
    }
    let xx = x * x;
    let yy = y * y;
    let zz = z * z;
    let xy = x * y;
    let yz = y * z;
    let xz = x * z;
    b[4] = SH_C2_0 * xy;
    b[5] = SH_C2_1 * yz;
    b[6] = SH_C2_2 * (2.0 * zz - xx - yy);
    b[7] = SH_C2_3 * xz;
    b[8] = SH_C2_4 * (xx - yy);
    if (degree < 3u) {
        return b;
    }
    b[9] = SH_C3_0 * y * (3.0 * xx - yy);
    b[10] = SH_C3_1 * xy * z;
    b[11] = SH_C3_2 * y * (4.0 * zz - xx - yy);
    b[12] = SH_C3_3 * z * (2.0 * zz - 3.0 * xx - 3.0 * yy);
    b[13] = SH_C3_4 * x * (4.0 * zz - xx - yy);
    b[14] = SH_C3_5 * z * (xx - yy);
    b[15] = SH_C3_6 * x * (xx - 3.0 * yy);
    if (degree < 4u) {
        return b;
    }
    b[16] = SH_C4_0 * xy * (xx - yy);
    b[17] = SH_C4_1 * yz * (3.0 * xx - yy);
    b[18] = SH_C4_2 * xy * (7.0 * zz - 1.0);
    b[19] = SH_C4_3 * yz * (7.0 * zz - 3.0);
    b[20] = SH_C4_4 * (zz * (35.0 * zz - 30.0) + 3.0);
    b[21] = SH_C4_5 * xz * (7.0 * zz - 3.0);
    b[22] = SH_C4_6 * (xx - yy) * (7.0 * zz - 1.0);
    b[23] = SH_C4_7 * xz * (xx - 3.0 * yy);
    b[24] = SH_C4_8 * (xx * (xx - 3.0 * yy) - yy * (3.0 * xx - yy));
    return b;
}
