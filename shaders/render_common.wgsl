// Shared definitions of the forward splat renderer (project, project_visible,
// map_intersections, rasterize). Include with: #include "render_common.wgsl"
//
// Conventions (shared/DESIGN.md, gsplat "classic"): OpenCV camera axes,
// pixel (i, j) has its centre at (i + 0.5, j + 0.5), 16x16 tiles.

#include "quat.wgsl"

const TILE_SIZE: u32 = 16u;
const TILE_PIXELS: u32 = 256u;
const NEAR_PLANE: f32 = 0.01;
const ALPHA_THRESHOLD: f32 = 0.00392156862745098; // 1/255
const MAX_ALPHA: f32 = 0.999;
const TRANSMITTANCE_STOP: f32 = 1e-4;
const LOW_PASS: f32 = 0.3;
// the 2D filter of the mip render mode (Mip-Splatting; gsplat "antialiased"; Brush mip)
const LOW_PASS_MIP: f32 = 0.1;
// floats per splat of the `aux` buffer written by project_forward:
// x, y, conic a, b, c, extent x, extent y, opacity
const AUX_STRIDE: u32 = 8u;
// floats per splat of ForwardState.projected: x, y, a, b, c, r, g, b, opacity
const PROJECTED_STRIDE: u32 = 9u;

// One uniform block for every render kernel, declared once in brushpy/render/params.py (RENDER_PARAMS).
#struct RenderParams

fn is_finite_f32(v: f32) -> bool {
    // exponent bits all ones = Inf or NaN (robust even under fast-math assumptions)
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

fn all_finite3(v: vec3<f32>) -> bool {
    return is_finite_f32(v.x) && is_finite_f32(v.y) && is_finite_f32(v.z);
}

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// Rotation matrix of a quaternion (w, x, y, z), normalised as q / max(|q|, 1e-12)
// so that a zero quaternion gives the identity. Columns as WGSL constructs them.
fn quat_to_rotmat(q_raw: vec4<f32>) -> mat3x3<f32> {
    return quat_to_mat(q_raw / max(length(q_raw), 1e-12));
}

// Rotation part of world_to_camera as a WGSL matrix.
fn camera_rotation(p: RenderParams) -> mat3x3<f32> {
    return transpose(mat3x3<f32>(p.w2c_row0.xyz, p.w2c_row1.xyz, p.w2c_row2.xyz));
}

fn camera_translation(p: RenderParams) -> vec3<f32> {
    return vec3<f32>(p.w2c_row0.w, p.w2c_row1.w, p.w2c_row2.w);
}

// 2D covariance J W Σ Wᵀ Jᵀ (before the low-pass) of a Gaussian at camera-space
// position `p_cam` with world-space covariance `cov3d` (EWA splatting,
// Zwicker et al. 2002; x/z and y/z clamped as gsplat does).
fn project_covariance(p: RenderParams, p_cam: vec3<f32>, cov3d: mat3x3<f32>) -> mat2x2<f32> {
    let fx = p.intrin.x;
    let fy = p.intrin.y;
    let z = p_cam.z;
    let tx = z * clamp(p_cam.x / z, p.clamp_lim.x, p.clamp_lim.y);
    let ty = z * clamp(p_cam.y / z, p.clamp_lim.z, p.clamp_lim.w);
    let rz = 1.0 / z;
    let rz2 = rz * rz;
    // J is 2x3: columns (fx/z, 0), (0, fy/z), (-fx tx/z², -fy ty/z²)
    let J = mat3x2<f32>(
        vec2<f32>(fx * rz, 0.0),
        vec2<f32>(0.0, fy * rz),
        vec2<f32>(-fx * tx * rz2, -fy * ty * rz2),
    );
    let T = J * camera_rotation(p);
    return T * cov3d * transpose(T);
}

// Tile range [min, max) in tiles (xy = min, zw = max exclusive) that can hold pixel
// centres within `extent` (+1 px of slack) of the 2D mean. Empty when min >= max.
fn tile_bbox(p: RenderParams, xy: vec2<f32>, extent: vec2<f32>) -> vec4<u32> {
    let size = vec2<f32>(f32(p.image.x), f32(p.image.y));
    let lo = clamp(ceil(xy - extent - vec2<f32>(1.5)), vec2<f32>(0.0), size);
    let hi = clamp(floor(xy + extent + vec2<f32>(0.5)), vec2<f32>(-1.0), size - vec2<f32>(1.0));
    if (lo.x > hi.x || lo.y > hi.y) {
        return vec4<u32>(0u);
    }
    let tmin = vec2<u32>(lo) / TILE_SIZE;
    let tmax = vec2<u32>(hi) / TILE_SIZE + vec2<u32>(1u);
    return vec4<u32>(tmin, tmax);
}

// Value of q(d) = a dx² + 2 b dx dy + c dy² at d (x) and a bound on its rounding error (y).
fn conic_quad(conic: vec3<f32>, d: vec2<f32>) -> vec2<f32> {
    let t0 = conic.x * d.x * d.x;
    let t1 = 2.0 * conic.y * d.x * d.y;
    let t2 = conic.z * d.y * d.y;
    return vec2<f32>(t0 + t1 + t2, abs(t0) + abs(t1) + abs(t2));
}

fn quad_within(q: vec2<f32>, power: f32) -> bool {
    // conservative: a relative slack on the magnitude of the terms absorbs f32 rounding
    return q.x <= power + 1e-4 * q.y + 1e-4 * abs(power) + 1e-5;
}

// Does the ellipse {d : q(d) <= power} (σ = q/2 <= ln(255 o), i.e. alpha >= 1/255)
// reach a pixel centre of tile (tx, ty)? Minimises the convex quadratic over the box
// of the tile's pixel centres (clipped to the image); never rejects a contributing tile.
fn tile_hit(p: RenderParams, xy: vec2<f32>, conic: vec3<f32>, power: f32, tx: u32, ty: u32) -> bool {
    let x0 = f32(tx * TILE_SIZE) + 0.5;
    let y0 = f32(ty * TILE_SIZE) + 0.5;
    let x1 = f32(min(tx * TILE_SIZE + TILE_SIZE, p.image.x) - 1u) + 0.5;
    let y1 = f32(min(ty * TILE_SIZE + TILE_SIZE, p.image.y) - 1u) + 0.5;
    let dmin = vec2<f32>(x0, y0) - xy;
    let dmax = vec2<f32>(x1, y1) - xy;
    if (dmin.x <= 0.0 && dmax.x >= 0.0 && dmin.y <= 0.0 && dmax.y >= 0.0) {
        return true;
    }
    // the minimum of a convex quadratic over a box not holding its centre lies on an edge
    let a = conic.x;
    let b = conic.y;
    let c = conic.z;
    var dy = clamp(-b * dmin.x / c, dmin.y, dmax.y);
    if (quad_within(conic_quad(conic, vec2<f32>(dmin.x, dy)), power)) {
        return true;
    }
    dy = clamp(-b * dmax.x / c, dmin.y, dmax.y);
    if (quad_within(conic_quad(conic, vec2<f32>(dmax.x, dy)), power)) {
        return true;
    }
    var dx = clamp(-b * dmin.y / a, dmin.x, dmax.x);
    if (quad_within(conic_quad(conic, vec2<f32>(dx, dmin.y)), power)) {
        return true;
    }
    dx = clamp(-b * dmax.y / a, dmin.x, dmax.x);
    return quad_within(conic_quad(conic, vec2<f32>(dx, dmax.y)), power);
}

// 2 ln(255 o): the value of q(d) = 2σ at which o exp(-σ) = 1/255.
fn opacity_power(opacity: f32) -> f32 {
    return 2.0 * log(255.0 * opacity);
}
