// Elementwise activations, forward and backward (brushpy/nn/activation.py; reference:
// brushpy/nn/reference.py relu / gelu and their _vjp).
//
//   relu(x) = max(x, 0)                          d/dx = [x > 0]
//   gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)   (tanh form,
//             Hendrycks & Gimpel 2016; PyTorch gelu(approximate="tanh"))
//   d/dx    = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2),  t = tanh(u)
//
// Defines: GELU (else ReLU). Entry points: forward (out = f(x)), backward (out = gout * f'(x)).

#include "common.wgsl"

// ActParams: brushpy/nn/activation.py ACT_PARAMS
#struct ActParams

@group(0) @binding(0) var<uniform> params: ActParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gout: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const GELU_C: f32 = 0.7978845608028654;
const GELU_A: f32 = 0.044715;

// tanh without overflow for large |u| (exp(2|u|) would be inf/inf)
fn stable_tanh(u: f32) -> f32 {
    let e = exp(-2.0 * abs(u));
    return sign(u) * (1.0 - e) / (1.0 + e);
}

fn act(v: f32) -> f32 {
#if GELU
    return 0.5 * v * (1.0 + stable_tanh(GELU_C * (v + GELU_A * v * v * v)));
#else
    return max(v, 0.0);
#endif
}

fn act_grad(v: f32) -> f32 {
#if GELU
    let t = stable_tanh(GELU_C * (v + GELU_A * v * v * v));
    return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_A * v * v);
#else
    return select(0.0, 1.0, v > 0.0);
#endif
}

@compute @workgroup_size(256)
fn forward(inv: Thread) {
    let i = thread_index(inv);
    if (i < params.n) {
        out[i] = act(x[i]);
    }
}

@compute @workgroup_size(256)
fn backward(inv: Thread) {
    let i = thread_index(inv);
    if (i < params.n) {
        out[i] = gout[i] * act_grad(x[i]);
    }
}
