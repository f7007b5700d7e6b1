// Position noise on low-opacity splats (Brush's exploration noise):
//   means += clamp(N(0, I) · (1 − σ(o))^150 · visible · lr_mean · weight, ±extent)
// One thread per splat; normals from Box–Muller over refine_common's hash RNG,
// keyed by (seed, step) so a resumed run draws the same noise.
#include "common.wgsl"
#include "refine_common.wgsl"

// Params: brushpy/train/trainer.py NOISE_PARAMS
#struct Params

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> raw_opacities: array<f32>;
@group(0) @binding(2) var<storage, read> visible: array<u32>;
@group(0) @binding(3) var<storage, read_write> means: array<f32>;

@compute @workgroup_size(256)
fn main(inv: Thread) {
    let i = thread_index(inv);
    if (i >= params.num_splats || visible[i] == 0u) {
        return;
    }
    let o = sigmoid(raw_opacities[i]);
    let w = pow(1.0 - o, 150.0) * params.scale;
    if (!(w > 0.0)) {
        return;
    }
    let n01 = box_muller(random_unit(params.key, 4u * i), random_unit(params.key, 4u * i + 1u));
    let n23 = box_muller(random_unit(params.key, 4u * i + 2u), random_unit(params.key, 4u * i + 3u));
    let step = clamp(vec3<f32>(n01, n23.x) * w, vec3<f32>(-params.clamp_to), vec3<f32>(params.clamp_to));
    means[3u * i + 0u] += step.x;
    means[3u * i + 1u] += step.y;
    means[3u * i + 2u] += step.z;
}
