"""Places that used to hold a second copy of a layout, a constant or a rule now use the one owner;
these tests pin what the callers rely on."""

import numpy as np
import pytest


def test_mip_export_ply_inria_layout_through_io_writer(tmp_path):
    from plyfile import PlyData

    from brushpy.io.ply import read_ply
    from brushpy.mip.model import export_ply

    rng = np.random.default_rng(3)
    k = 7
    params = {
        "means": rng.uniform(0, 1, (k, 3)).astype(np.float32),
        "log_scales": rng.uniform(-4, -1, (k, 3)).astype(np.float32),
        "rotations": rng.normal(size=(k, 4)).astype(np.float32),
        "log_amplitudes": np.log(np.array([0.001, 0.2, 0.5, 0.9, 1.0, 2.0, 30.0], np.float32)),
    }
    E = (1.0, 0.5, 0.25)
    path = export_ply(params, tmp_path / "sub" / "m.ply", E)
    assert path == tmp_path / "sub" / "m.ply"
    v = PlyData.read(str(path))["vertex"]
    assert list(v.data.dtype.names) == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                                        "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert all(v.data.dtype[n] == np.dtype("<f4") for n in v.data.dtype.names)
    s = read_ply(path)
    amp = np.exp(params["log_amplitudes"].astype(np.float64))
    np.testing.assert_allclose(s.means, params["means"] * np.asarray(E), rtol=1e-6)
    np.testing.assert_allclose(s.colors, np.repeat(np.minimum(amp, 1.0)[:, None], 3, 1), atol=1e-6)
    np.testing.assert_allclose(s.opacities, np.clip(amp, 0.01, 0.99), atol=1e-6)
    assert np.all(s.normals == 0)
    # the physical covariance D R S^2 R^T D survives the file
    def cov(q, ls):
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        w, x, y, z = q.T
        R = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                      2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                      2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], 1).reshape(-1, 3, 3)
        L = R * np.exp(ls)[:, None, :]
        return L @ np.swapaxes(L, 1, 2)
    D = np.diag(E)
    want = D @ cov(params["rotations"].astype(np.float64), params["log_scales"].astype(np.float64)) @ D
    np.testing.assert_allclose(cov(s.rotations.astype(np.float64), s.log_scales.astype(np.float64)), want,
                               rtol=1e-4, atol=1e-9)


def test_scene_bounds_one_rule_two_uses():
    from brushpy.render.bounds import BOUND_PERCENTILE, FRAMING_PERCENTILE, scene_bounds
    from brushpy.train import refine
    from brushpy.viewer.camera import framing_bounds

    assert refine.scene_bounds is scene_bounds and refine.BOUND_PERCENTILE == BOUND_PERCENTILE == 0.8
    v = np.arange(1000, dtype=np.float32)
    m = np.stack([v, 2 * v, -v], axis=1)
    m[3, 1] = np.inf  # ignored on its axis only
    lo, hi = framing_bounds(m)
    # Brush's index rule in float32: (1 - 0.98) / 2 * 1000 = 9.99.. -> v[9]; (1 + 0.98) / 2 * 1000 -> v[990];
    # y has 999 finite values (row 3 dropped): v[9] = 2 * 10, v[int(989.01)] = 2 * 990
    np.testing.assert_array_equal(lo, [9.0, 20.0, -990.0])
    np.testing.assert_array_equal(hi, [990.0, 1980.0, -9.0])
    b = scene_bounds(m)  # the 10-90% box: 0.19999999 / 2 * 1000 -> v[99], v[900]
    np.testing.assert_array_equal(b.lo, [99.0, 200.0, -900.0])
    np.testing.assert_array_equal(b.hi, [900.0, 1800.0, -99.0])
    assert FRAMING_PERCENTILE == 0.98
    nan = np.full((4, 3), np.nan)
    u = scene_bounds(nan)
    np.testing.assert_array_equal(u.center, 0)
    np.testing.assert_array_equal(u.half_extent, 1)
    with pytest.raises(ValueError, match="no finite"):
        scene_bounds(nan, require_finite=True)
    with pytest.raises(ValueError, match="no finite"):
        framing_bounds(np.zeros((0, 3)))
