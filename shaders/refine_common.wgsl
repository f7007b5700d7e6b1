// Helpers shared by the refine kernels: counter-based random numbers,
// finiteness tests, quaternion rotation. The NumPy model in
// tests/reference/refine.py reproduces the random numbers bit for bit.

// PCG hash of one 32-bit word (Jarzynski & Olano 2020, "Hash Functions for
// GPU Rendering", pcg variant): a permutation of u32.
fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// Random bits for element `index` of the stream `key`
// (key = pcg(pcg(pcg(seed) ^ step) ^ stream), made on the host).
fn random_bits(key: u32, index: u32) -> u32 {
    return pcg_hash(pcg_hash(index) ^ key);
}

// Uniform in (0, 1]: 24 random bits, exactly representable in f32.
fn random_unit(key: u32, index: u32) -> f32 {
    return (f32(random_bits(key, index) >> 8u) + 1.0) * (1.0 / 16777216.0);
}

const TWO_PI: f32 = 6.283185307179586;

// Two independent N(0,1) samples from two uniforms in (0, 1] (Box–Muller; used by the
// position noise of mean_noise.wgsl and mcmc.wgsl).
fn box_muller(u1: f32, u2: f32) -> vec2<f32> {
    let r = sqrt(-2.0 * log(u1));   // random_unit is in (0, 1]
    let a = TWO_PI * u2;
    return vec2<f32>(r * cos(a), r * sin(a));
}

// Efraimidis–Spirakis key -ln(u)/w as sortable u32 bits: ascending order of
// the bits is ascending order of the (non-negative) float key, so the k
// smallest keys are a weighted sample of k items without replacement.
fn weighted_key_bits(key: u32, index: u32, weight: f32) -> u32 {
    let e = -log(random_unit(key, index));
    if (!(e > 0.0)) {
        return 0u;  // u == 1 gives -0.0: smallest key
    }
    return bitcast<u32>(e / weight);
}

fn is_finite_f32(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

// Rotate v by the unit quaternion q = (w, x, y, z).
fn quat_rotate(q: vec4<f32>, v: vec3<f32>) -> vec3<f32> {
    let u = q.yzw;
    let t = 2.0 * cross(u, v);
    return v + q.x * t + cross(u, t);
}

fn normalize_quat(q: vec4<f32>) -> vec4<f32> {
    let n2 = dot(q, q);
    if (!(n2 > 1e-20)) {
        return vec4<f32>(1.0, 0.0, 0.0, 0.0);
    }
    return q * inverseSqrt(n2);
}

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}
