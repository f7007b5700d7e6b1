// Shared definitions of the MIP kernels (brushpy/mip/render.py).
// Maths: tests/reference/mip.py.

#include "quat.wgsl"

struct View {
    m0: vec4<f32>,       // row 0 of M (box -> camera), t.x
    m1: vec4<f32>,
    m2: vec4<f32>,
    intr: vec4<f32>,     // fx, fy, cx, cy (pixels)
    width: u32,
    height: u32,
    tiles_x: u32,
    tiles_y: u32,
    num_gaussians: u32,
    orthographic: u32,
    capacity: u32,       // length of the intersection list
    _pad0: u32,
    power: f32,          // p = 1 / temperature of the p-norm soft maximum
    blur: f32,           // added to the 2D covariance diagonal (pixels^2)
    _pad1: f32,
    _pad2: f32,
}

const TILE: u32 = 16u;
const LOG255: f32 = 5.541263545158426;
const PROJ_STRIDE: u32 = 8u;   // u, v, A, B, C, log_a, 0, 0
const VPROJ_STRIDE: u32 = 6u;  // v_u, v_v, v_A, v_B, v_C, v_log_a

// M as a matrix (WGSL matrices are built from columns).
fn view_matrix(view: View) -> mat3x3<f32> {
    return transpose(mat3x3<f32>(view.m0.xyz, view.m1.xyz, view.m2.xyz));
}

fn view_translation(view: View) -> vec3<f32> {
    return vec3<f32>(view.m0.w, view.m1.w, view.m2.w);
}


// Projection Jacobian (2x3, columns) at camera point c.
fn projection_jacobian(view: View, c: vec3<f32>) -> mat3x2<f32> {
    let fx = view.intr.x;
    let fy = view.intr.y;
    if view.orthographic != 0u {
        return mat3x2<f32>(vec2<f32>(fx, 0.0), vec2<f32>(0.0, fy), vec2<f32>(0.0, 0.0));
    }
    let iz = 1.0 / c.z;
    return mat3x2<f32>(vec2<f32>(fx * iz, 0.0), vec2<f32>(0.0, fy * iz),
                       vec2<f32>(-fx * c.x * iz * iz, -fy * c.y * iz * iz));
}

fn project_point(view: View, c: vec3<f32>) -> vec2<f32> {
    if view.orthographic != 0u {
        return vec2<f32>(view.intr.x * c.x + view.intr.z, view.intr.y * c.y + view.intr.w);
    }
    return vec2<f32>(view.intr.x * c.x / c.z + view.intr.z, view.intr.y * c.y / c.z + view.intr.w);
}

// L = R diag(s), the factor of the 3D covariance Σ3 = L Lᵀ (R the rotation,
// s the standard deviations).
fn scaled_rotation(R: mat3x3<f32>, s: vec3<f32>) -> mat3x3<f32> {
    return mat3x3<f32>(R[0] * s.x, R[1] * s.y, R[2] * s.z);
}

// The 2D covariance sig2 with view.blur added to its diagonal, as
// (a, b, c, det) = (Σ00 + blur, Σ01, Σ11 + blur, a c - b²).
fn blurred_cov2d(view: View, sig2: mat2x2<f32>) -> vec4<f32> {
    let a = sig2[0][0] + view.blur;
    let b = sig2[1][0];
    let cc = sig2[1][1] + view.blur;
    return vec4<f32>(a, b, cc, a * cc - b * b);
}

// The conic (A, B, C) = (c, -b, a) / det, the inverse of blurred_cov2d's matrix.
fn cov2d_conic(cov: vec4<f32>) -> vec3<f32> {
    return vec3<f32>(cov.z / cov.w, -cov.y / cov.w, cov.x / cov.w);
}

// Pixel of thread `lid` of the workgroup that draws tile `tile` (row-major
// TILE x TILE pixels): tile_ok, the tile exists; inside, the pixel lies in the image.
struct TilePixel {
    tile_ok: bool,
    inside: bool,
    px: u32,
    py: u32,
}

fn tile_pixel(view: View, tile: u32, lid: u32) -> TilePixel {
    let num_tiles = view.tiles_x * view.tiles_y;
    let tile_ok = tile < num_tiles;
    let tx = select(0u, tile % view.tiles_x, tile_ok);
    let ty = select(0u, tile / view.tiles_x, tile_ok);
    let px = tx * TILE + lid % TILE;
    let py = ty * TILE + lid / TILE;
    let inside = tile_ok && px < view.width && py < view.height;
    return TilePixel(tile_ok, inside, px, py);
}

// σ = ½ A dx² + B dx dy + ½ C dy² of conic cn = (A, B, C, ·) at offset d.
fn conic_sigma(cn: vec4<f32>, d: vec2<f32>) -> f32 {
    return 0.5 * (cn.x * d.x * d.x + cn.z * d.y * d.y) + cn.y * d.x * d.y;
}

fn is_finite3(v: vec3<f32>) -> bool {
    return all(abs(v) < vec3<f32>(1e30));
}
