// Fused L1 + SSIM image loss (forward and backward) and the SSIM/PSNR metric sums.
//
// SSIM follows Wang et al. 2004 as used by 3DGS/gsplat/Brush: an 11-tap Gaussian
// window (sigma 1.5, normalised), applied separably with zero padding ("same"
// convolution), per channel, C1 = 0.01^2, C2 = 0.03^2:
//   mu_x = G*x, mu_y = G*y, s_xx = G*(x^2) - mu_x^2, s_yy = G*(y^2) - mu_y^2,
//   s_xy = G*(xy) - mu_x mu_y,
//   S = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_xx + s_yy + C2)).
//
// Precision: E[x^2] - mu^2 cancels badly in f32 on flat bright regions (C2 is only
// 9e-4), so the blurred moments are taken of x - cx and y - cy, with (cx, cy) the
// tile's first pixel, and turned back into mu, sigma exactly (see forward).
//
// Work is split in 16x16 pixel tiles; a tile needs a 26x26 patch (5 pixel apron)
// which is staged in workgroup memory one channel at a time.
//
// Entry points:
//   forward  : per-pixel loss (or metric) sums per tile -> partials; for the loss
//              also d loss / d (mu_x, E[x^2], E[xy]) maps -> dmaps.
//   backward : blurs dmaps back (the adjoint of a zero-padded symmetric blur is the
//              same blur) and adds the L1 / alpha terms -> v_image.
//   reduce   : sums the per-tile partials into out[out_offset + k].
//
// Defines: GT_PACKED (ground truth is RGBA8 packed in u32, r in the low byte),
// METRIC (forward only writes metric sums: sum of S over RGB, sum of squared error),
// IMG_CHANNELS (3 or 4: channels per pixel of `image`), GT_CHANNELS (f32 gt only).

#include "common.wgsl"
#include "reduce.wgsl"

// declared once in brushpy/loss/image_loss.py (LOSS_PARAMS)
#struct LossParams

const FLAG_COMPOSITE_GT: u32 = 1u;   // gt rgb := gt over bg (straight or premultiplied alpha)
const FLAG_ALPHA_LOSS: u32 = 2u;     // add alpha_weight * mean |alpha - alpha_gt|
const FLAG_MASK_BUFFER: u32 = 4u;    // loss map multiplied by mask[H, W]
const FLAG_MASK_GT_ALPHA: u32 = 8u;  // loss map multiplied by gt alpha
const FLAG_PREMULTIPLIED: u32 = 16u; // gt rgb already premultiplied by its alpha

const C1: f32 = 0.0001;
const C2: f32 = 0.0009;
const TILE: u32 = 16u;
const APRON: u32 = 5u;
const PATCH: u32 = 26u;            // TILE + 2 * APRON
const PATCH_CELLS: u32 = 676u;     // PATCH * PATCH
const HCELLS: u32 = 416u;          // PATCH rows x TILE columns

const GAUSS = array<f32, 11>({{GAUSS}});

@group(0) @binding(0) var<uniform> params: LossParams;
@group(0) @binding(1) var<storage, read> image: array<f32>;
#if GT_PACKED
@group(0) @binding(2) var<storage, read> gt: array<u32>;
#else
@group(0) @binding(2) var<storage, read> gt: array<f32>;
#endif
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read_write> dmaps: array<f32>;     // [H, W, 3 channels, 3]
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;  // [tiles, 2]
@group(0) @binding(6) var<storage, read_write> v_image: array<f32>;   // [H, W, 4]

var<workgroup> patch_a: array<f32, 676>;
var<workgroup> patch_b: array<f32, 676>;
var<workgroup> patch_c: array<f32, 676>;
var<workgroup> h0: array<f32, 416>;
var<workgroup> h1: array<f32, 416>;
var<workgroup> h2: array<f32, 416>;
var<workgroup> h3: array<f32, 416>;
var<workgroup> h4: array<f32, 416>;

fn gt_rgba(pix: u32) -> vec4<f32> {
#if GT_PACKED
    return unpack4x8unorm(gt[pix]);
#else
#if GT_RGB
    return vec4<f32>(gt[pix * 3u], gt[pix * 3u + 1u], gt[pix * 3u + 2u], 1.0);
#else
    return vec4<f32>(gt[pix * 4u], gt[pix * 4u + 1u], gt[pix * 4u + 2u], gt[pix * 4u + 3u]);
#endif
#endif
}

// Ground-truth colour the render is compared with (after compositing over bg).
fn gt_target(pix: u32) -> vec4<f32> {
    let g = gt_rgba(pix);
    var rgb = g.rgb;
    if ((params.flags & FLAG_COMPOSITE_GT) != 0u) {
        if ((params.flags & FLAG_PREMULTIPLIED) == 0u) {
            rgb = rgb * g.a;
        }
        rgb = rgb + (1.0 - g.a) * params.bg.rgb;
    }
    return vec4<f32>(rgb, g.a);
}

fn image_value(pix: u32, c: u32) -> f32 {
    return image[pix * {{IMG_CHANNELS}}u + c];
}

fn loss_mask(pix: u32, g: vec4<f32>) -> f32 {
    var m = 1.0;
    if ((params.flags & FLAG_MASK_BUFFER) != 0u) {
        m = mask[pix];
    }
    if ((params.flags & FLAG_MASK_GT_ALPHA) != 0u) {
        m = m * g.a;
    }
    return m;
}

// Sum of the Gaussian taps that fall inside [0, size) for a window centred on p.
fn window_mass(p: u32, size: u32) -> f32 {
    if (p >= APRON && p + APRON < size) {
        return 1.0;
    }
    var m = 0.0;
    for (var k = 0u; k < 11u; k = k + 1u) {
        let q = i32(p) + i32(k) - i32(APRON);
        if (q >= 0 && q < i32(size)) {
            m = m + GAUSS[k];
        }
    }
    return m;
}

fn sign0(v: f32) -> f32 {
    return select(select(0.0, -1.0, v < 0.0), 1.0, v > 0.0);
}

// Pixel index of patch cell `cell` of the tile at `origin`, or -1 outside the image.
fn cell_pixel(origin: vec2<i32>, cell: u32) -> i32 {
    let px = origin.x + i32(cell % PATCH) - i32(APRON);
    let py = origin.y + i32(cell / PATCH) - i32(APRON);
    if (px < 0 || py < 0 || px >= i32(params.width) || py >= i32(params.height)) {
        return -1;
    }
    return py * i32(params.width) + px;
}

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let origin = vec2<i32>(i32(wid.x * TILE), i32(wid.y * TILE));
    let lx = lid % TILE;
    let ly = lid / TILE;
    let px = u32(origin.x) + lx;
    let py = u32(origin.y) + ly;
    let inside = px < params.width && py < params.height;
    let pix = py * params.width + px;

    var g_here = vec4<f32>(0.0);
    var m_here = 0.0;
    if (inside) {
        g_here = gt_target(pix);
        m_here = loss_mask(pix, g_here);
    }
    var acc0 = 0.0;   // loss contribution (METRIC: sum of S)
    var acc1 = 0.0;   // METRIC: sum of squared error
    let w = params.ssim_weight;

    // Window mass inside the image at this pixel (1 away from the borders); the
    // moments are accumulated around a per-tile shift (cx, cy) and corrected with it.
    let wmass = window_mass(px, params.width) * window_mass(py, params.height);
    let corner = u32(origin.y) * params.width + u32(origin.x);
    let g_corner = gt_target(corner);

    for (var c = 0u; c < 3u; c = c + 1u) {
        let cx = image_value(corner, c);
        let cy = g_corner[c];
        for (var cell = lid; cell < PATCH_CELLS; cell = cell + 256u) {
            let p = cell_pixel(origin, cell);
            var xv = 0.0;
            var yv = 0.0;
            if (p >= 0) {
                xv = image_value(u32(p), c) - cx;
                yv = gt_target(u32(p))[c] - cy;
            }
            patch_a[cell] = xv;
            patch_b[cell] = yv;
        }
        workgroupBarrier();
        for (var j = lid; j < HCELLS; j = j + 256u) {
            let row = j / TILE;
            let col = j % TILE;
            var sx = 0.0;
            var sy = 0.0;
            var sxx = 0.0;
            var syy = 0.0;
            var sxy = 0.0;
            for (var k = 0u; k < 11u; k = k + 1u) {
                let cell = row * PATCH + col + k;
                let xv = patch_a[cell];
                let yv = patch_b[cell];
                let gk = GAUSS[k];
                sx = sx + gk * xv;
                sy = sy + gk * yv;
                sxx = sxx + gk * (xv * xv);
                syy = syy + gk * (yv * yv);
                sxy = sxy + gk * (xv * yv);
            }
            h0[j] = sx;
            h1[j] = sy;
            h2[j] = sxx;
            h3[j] = syy;
            h4[j] = sxy;
        }
        workgroupBarrier();
        if (inside) {
            var mx = 0.0;
            var my = 0.0;
            var exx = 0.0;
            var eyy = 0.0;
            var exy = 0.0;
            for (var k = 0u; k < 11u; k = k + 1u) {
                let j = (ly + k) * TILE + lx;
                let gk = GAUSS[k];
                mx = mx + gk * h0[j];
                my = my + gk * h1[j];
                exx = exx + gk * h2[j];
                eyy = eyy + gk * h3[j];
                exy = exy + gk * h4[j];
            }
            // shifted moments -> statistics (exact identities; the (1 - W) terms only
            // matter within 5 pixels of a border, where zero padding cuts the window)
            let om = 1.0 - wmass;
            let sxx = exx - mx * mx + om * (cx * mx + cx * mx + cx * cx * wmass);
            let syy = eyy - my * my + om * (cy * my + cy * my + cy * cy * wmass);
            let sxy = exy - mx * my + om * (cy * mx + cx * my + cx * cy * wmass);
            let mux = mx + cx * wmass;
            let muy = my + cy * wmass;
            let a = 2.0 * mux * muy + C1;
            let b = 2.0 * sxy + C2;
            let cc = mux * mux + muy * muy + C1;
            let d = sxx + syy + C2;
            let s = (a * b) / (cc * d);
            let xv = image_value(pix, c);
            let yv = g_here[c];
#if METRIC
            acc0 = acc0 + s;
            acc1 = acc1 + (xv - yv) * (xv - yv);
#else
            acc0 = acc0 + m_here * ((1.0 - w) * abs(xv - yv) + w * (1.0 - s));
            // d loss / d S for this pixel and channel
            let up = -w * m_here * params.inv_rgb_count;
            // dS/d(mu_x, E[x^2], E[xy]) by the quotient rule on S = a b / (cc d):
            //   dS/dmu_x = S (2 mu_y / a - 2 mu_y / b - 2 mu_x / cc + 2 mu_x / d)
            //            = 2 mu_y (b - a) / (cc d) + 2 mu_x S (1/d - 1/cc)   (S/a = b/(cc d), S/b = a/(cc d))
            //   dS/dE[x^2] = -S / d,   dS/dE[xy] = 2 S / b = 2 a / (cc d)
            // Only the loss's own denominators cc >= C1 and d (~ >= C2) appear, as in
            // fused-ssim's dm_dmu1 (rahul-goel/fused-ssim). The 1/a, 1/b form gave NaN where
            // b = 2 s_xy + C2 rounds to exactly 0 (s_xy = -C2/2, an anti-correlated window):
            // S = 0 there, and S * (2 mu_y / b) and 2 S / b are 0 * inf and 0 / 0, while the loss
            // itself stays finite. The NaN, blurred by the backward over 11x11 pixels of one
            // channel, reached every splat blended there (issue 14: 152 splats of a 7-Scenes run).
            let inv_den = 1.0 / (cc * d);
            let d_mx = up * (2.0 * muy * (b - a) * inv_den + 2.0 * mux * s * (1.0 / d - 1.0 / cc));
            let d_exx = up * (-s / d);
            let d_exy = up * (2.0 * a * inv_den);
            let o = (pix * 3u + c) * 3u;
            dmaps[o] = d_mx;
            dmaps[o + 1u] = d_exx;
            dmaps[o + 2u] = d_exy;
#endif
        }
        workgroupBarrier();
    }

#if METRIC
    let mine = vec2<f32>(acc0, acc1);
#else
    var total = acc0 * params.inv_rgb_count;
    if (inside && (params.flags & FLAG_ALPHA_LOSS) != 0u) {
        let ar = image_value(pix, 3u);
        total = total + params.alpha_weight * abs(ar - g_here.a) * params.inv_pixel_count;
    }
    let mine = vec2<f32>(total, 0.0);
#endif
    let sums = workgroup_sum2(lid, mine);
    if (lid == 0u) {
        let t = wid.y * params.tiles_x + wid.x;
        partials[2u * t] = sums.x;
        partials[2u * t + 1u] = sums.y;
    }
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let origin = vec2<i32>(i32(wid.x * TILE), i32(wid.y * TILE));
    let lx = lid % TILE;
    let ly = lid / TILE;
    let px = u32(origin.x) + lx;
    let py = u32(origin.y) + ly;
    let inside = px < params.width && py < params.height;
    let pix = py * params.width + px;

    var g_here = vec4<f32>(0.0);
    var m_here = 0.0;
    if (inside) {
        g_here = gt_target(pix);
        m_here = loss_mask(pix, g_here);
    }
    let w = params.ssim_weight;

    for (var c = 0u; c < 3u; c = c + 1u) {
        for (var cell = lid; cell < PATCH_CELLS; cell = cell + 256u) {
            let p = cell_pixel(origin, cell);
            var v0 = 0.0;
            var v1 = 0.0;
            var v2 = 0.0;
            if (p >= 0) {
                let o = (u32(p) * 3u + c) * 3u;
                v0 = dmaps[o];
                v1 = dmaps[o + 1u];
                v2 = dmaps[o + 2u];
            }
            patch_a[cell] = v0;
            patch_b[cell] = v1;
            patch_c[cell] = v2;
        }
        workgroupBarrier();
        for (var j = lid; j < HCELLS; j = j + 256u) {
            let row = j / TILE;
            let col = j % TILE;
            var s0 = 0.0;
            var s1 = 0.0;
            var s2 = 0.0;
            for (var k = 0u; k < 11u; k = k + 1u) {
                let cell = row * PATCH + col + k;
                let gk = GAUSS[k];
                s0 = s0 + gk * patch_a[cell];
                s1 = s1 + gk * patch_b[cell];
                s2 = s2 + gk * patch_c[cell];
            }
            h0[j] = s0;
            h1[j] = s1;
            h2[j] = s2;
        }
        workgroupBarrier();
        if (inside) {
            var b0 = 0.0;
            var b1 = 0.0;
            var b2 = 0.0;
            for (var k = 0u; k < 11u; k = k + 1u) {
                let j = (ly + k) * TILE + lx;
                let gk = GAUSS[k];
                b0 = b0 + gk * h0[j];
                b1 = b1 + gk * h1[j];
                b2 = b2 + gk * h2[j];
            }
            let xv = image_value(pix, c);
            let yv = g_here[c];
            let grad = b0 + 2.0 * xv * b1 + yv * b2
                + (1.0 - w) * m_here * sign0(xv - yv) * params.inv_rgb_count;
            v_image[pix * 4u + c] = grad;
        }
        workgroupBarrier();
    }
    if (inside) {
        var ga = 0.0;
        if ((params.flags & FLAG_ALPHA_LOSS) != 0u) {
            ga = params.alpha_weight * sign0(image_value(pix, 3u) - g_here.a) * params.inv_pixel_count;
        }
        v_image[pix * 4u + 3u] = ga;
    }
}
