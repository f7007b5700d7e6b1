// Viewer: show a splat image (storage buffer f32 [H,W,4], row-major, RGB + alpha)
// on the window's framebuffer with one fullscreen triangle. The image may be
// smaller than the framebuffer (render scale < 1): it is sampled bilinearly,
// texel centres at +0.5 as in the rasterizer.
//
// Splat colours are display-referred (sRGB-encoded values, as trained against
// photos). When the framebuffer format is an *-srgb one, the hardware encodes
// on write, so the value is decoded first (params.srgb_target = 1) to land on
// the screen unchanged.

// Params: brushpy/viewer/view.py BLIT_PARAMS
#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> image: array<f32>;

@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> @builtin(position) vec4<f32> {
    // vertices (-1,-1), (3,-1), (-1,3) cover the screen
    let corner = vec2<f32>(f32((index << 1u) & 2u), f32(index & 2u));
    return vec4<f32>(corner * 2.0 - 1.0, 0.0, 1.0);
}

fn texel(p: vec2<i32>) -> vec3<f32> {
    let size = vec2<i32>(params.image_size);
    let q = clamp(p, vec2<i32>(0), size - 1);
    let base = u32(q.y * size.x + q.x) * 4u;
    return vec3<f32>(image[base], image[base + 1u], image[base + 2u]);
}

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    let lo = c / 12.92;
    let hi = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(hi, lo, c <= vec3<f32>(0.04045));
}

@fragment
fn fs_main(@builtin(position) frag: vec4<f32>) -> @location(0) vec4<f32> {
    // frag.xy: framebuffer pixel centre (x right, y down), same axes as the image
    let scale = vec2<f32>(params.image_size) / vec2<f32>(params.target_size);
    let pos = frag.xy * scale - 0.5;
    let p0 = vec2<i32>(floor(pos));
    let t = pos - floor(pos);
    let top = mix(texel(p0), texel(p0 + vec2<i32>(1, 0)), t.x);
    let bottom = mix(texel(p0 + vec2<i32>(0, 1)), texel(p0 + vec2<i32>(1, 1)), t.x);
    var rgb = clamp(mix(top, bottom, t.y), vec3<f32>(0.0), vec3<f32>(1.0));
    if params.srgb_target == 1u {
        rgb = srgb_to_linear(rgb);
    }
    return vec4<f32>(rgb, 1.0);
}
