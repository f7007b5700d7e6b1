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
