"""Emissive 3D Gaussians for MIP mode: parameters, initialisation, checkpoints, PLY export.

Parameters (float32, on the GPU):

- ``means [K,3]``: centres in the volume's normalised box [0,1]^3 (see
  :mod:`brushpy.mip.camera` for the axes).
- ``log_scales [K,3]``: log standard deviations along the rotated axes, box units.
- ``rotations [K,4]``: quaternions (w, x, y, z), unnormalised.
- ``log_amplitudes [K]``: the peak emission is ``exp(log_amplitude)`` (intensity,
  volume normalised to [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..gpu import GpuTensor
from ..render.rotations import matrices_to_quaternions, quaternions_to_matrices

#: the MIP model's trainable tensors, in input order (owner: :attr:`MipGaussians.PARAM_NAMES`)
PARAM_NAMES = ("means", "log_scales", "rotations", "log_amplitudes")
LOG_SCALE_RANGE = (-6.0, 0.0)
LOG_AMPLITUDE_RANGE = (-10.0, 6.0)


class MipModelError(InputError):
    """A MIP model ``.npz`` that cannot be used (the message names the file and what is wrong)."""


def read_model_file(path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The parameter arrays and the other arrays of a model ``.npz`` (as :meth:`MipGaussians.save`
    writes it), checked on the host: shapes [K,3], [K,3], [K,4], [K] with one K >= 1, numbers,
    finite.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        MipModelError: not a readable ``.npz`` (truncated, corrupt, pickled objects), a missing
            or malformed parameter array (names the file).
    """
    import zipfile
    import zlib

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"MIP model {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise MipModelError(f"MIP model {path}: a single array, not an .npz of {', '.join(PARAM_NAMES)}; "
                                    "give a model.npz written by `brushpy mip train`")
            missing = [n for n in PARAM_NAMES if n not in z.files]
            if missing:
                raise MipModelError(f"MIP model {path}: missing arrays {missing} (expected {PARAM_NAMES}); "
                                    "give a model.npz written by `brushpy mip train`")
            params = {n: z[n] for n in PARAM_NAMES}
            extra = {k: z[k] for k in z.files if k not in PARAM_NAMES}
    except MipModelError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise MipModelError(f"MIP model {path}: cannot read it ({exc}); the file is corrupt or not an .npz "
                            "written by `brushpy mip train`") from None
    widths = {"means": 3, "log_scales": 3, "rotations": 4, "log_amplitudes": None}
    k = None
    for n, a in params.items():
        want = (k if k is not None else "K",) + ((widths[n],) if widths[n] else ())
        bad_shape = a.ndim != len(want) or (widths[n] and a.shape[-1] != widths[n]) or (k is not None and a.shape[0] != k)
        if a.dtype.kind not in "fiu" or bad_shape:
            raise MipModelError(f"MIP model {path}: `{n}` is {a.dtype} {list(a.shape)}, expected float32 "
                                f"{list(want)}; the file is corrupt or not written by `brushpy mip train`")
        if not np.all(np.isfinite(a)):
            raise MipModelError(f"MIP model {path}: `{n}` contains NaN or infinite values (a diverged run?); "
                                "use an earlier checkpoint")
        k = a.shape[0]
    if not k:
        raise MipModelError(f"MIP model {path}: no Gaussians")
    return params, extra


@dataclass
class MipGaussians:
    """GPU tensors of a MIP model (see the module docstring for shapes and units).

    A parameter group (:class:`brushpy.autodiff.ParamGroup`): :meth:`params` names the
    tensors with :attr:`PARAM_NAMES`.
    """

    PARAM_NAMES = PARAM_NAMES

    means: GpuTensor
    log_scales: GpuTensor
    rotations: GpuTensor
    log_amplitudes: GpuTensor

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[0]

    def params(self) -> dict[str, GpuTensor]:
        """``{name: tensor}`` for every name in :attr:`PARAM_NAMES`."""
        return {n: getattr(self, n) for n in PARAM_NAMES}

    tensors = params

    @classmethod
    def from_numpy(cls, means, log_scales, rotations, log_amplitudes) -> "MipGaussians":
        """Upload arrays (validated: shapes [K,3], [K,3], [K,4], [K]; finite)."""
        arrs = {
            "means": np.asarray(means, np.float32).reshape(-1, 3),
            "log_scales": np.asarray(log_scales, np.float32).reshape(-1, 3),
            "rotations": np.asarray(rotations, np.float32).reshape(-1, 4),
            "log_amplitudes": np.asarray(log_amplitudes, np.float32).reshape(-1),
        }
        k = arrs["means"].shape[0]
        for n, a in arrs.items():
            if a.shape[0] != k:
                raise ValueError(f"MIP model: {n} has {a.shape[0]} rows, means has {k}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"MIP model: {n} contains NaN or infinite values")
        if k == 0:
            raise ValueError("MIP model: no Gaussians")
        return cls(**{n: GpuTensor.from_numpy(a, label=f"mip {n}") for n, a in arrs.items()})

    def to_numpy(self) -> dict[str, np.ndarray]:
        return {n: t.numpy() for n, t in self.tensors().items()}

    # -- files ------------------------------------------------------------------
    def save(self, path, **extra) -> Path:
        """Write an ``.npz`` with the four parameter arrays plus ``extra`` metadata arrays.

        Written atomically: a failed write raises :class:`~brushpy.io.atomic.WriteError`
        and keeps the previous file.
        """
        from ..io.atomic import atomic_write

        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        with atomic_write(path) as f:
            np.savez(f, **self.to_numpy(), **{k: np.asarray(v) for k, v in extra.items()})
        return path

    @classmethod
    def load(cls, path) -> tuple["MipGaussians", dict]:
        """Read a model ``.npz`` (as written by :meth:`save`); returns (model, other arrays).

        Raises:
            FileNotFoundError: ``path`` does not exist.
            MipModelError: an unreadable or malformed file (:func:`read_model_file`; names it).
        """
        params, extra = read_model_file(path)
        return cls.from_numpy(**params), extra


def init_from_volume(volume: np.ndarray, num_gaussians: int = 2000, threshold: float = 0.1, seed: int = 0,
                     extents=None) -> dict[str, np.ndarray]:
    """Initial parameters sampled at bright voxels.

    Voxels above ``threshold`` (normalised intensity) are drawn without
    replacement with probability proportional to their intensity (all of them
    when there are fewer than ``num_gaussians``; the rest then go to random
    positions), jittered within the voxel. Amplitude = the voxel's intensity;
    scales isotropic = the mean distance to the 3 nearest other samples in
    physical units (as 3DGS initialises from points), clamped to
    :data:`LOG_SCALE_RANGE`; identity rotations.

    Returns a dict of float32 arrays (see :data:`PARAM_NAMES`).
    """
    from scipy.spatial import cKDTree

    if num_gaussians < 1:
        raise ValueError(f"--num-gaussians must be >= 1, got {num_gaussians}")
    rng = np.random.default_rng(seed)
    nz, ny, nx = volume.shape
    E = np.ones(3) if extents is None else np.asarray(extents, np.float64)
    flat = volume.ravel()
    cand = np.flatnonzero(flat > threshold)
    if cand.size == 0:
        cand = np.flatnonzero(flat > 0)
    k = min(num_gaussians, cand.size)
    w = flat[cand].astype(np.float64)
    pick = rng.choice(cand, size=k, replace=False, p=w / w.sum())
    kk, jj, ii = np.unravel_index(pick, volume.shape)
    n = np.array([nx, ny, nz], np.float64)
    u = (np.stack([ii, jj, kk], -1) + rng.uniform(0.25, 0.75, (k, 3))) / n
    amp = flat[pick].astype(np.float64)
    if k < num_gaussians:
        extra = num_gaussians - k
        u = np.concatenate([u, rng.uniform(0, 1, (extra, 3))])
        amp = np.concatenate([amp, np.full(extra, 0.05)])
    phys = u * E
    if len(phys) > 1:
        d, _ = cKDTree(phys).query(phys, k=min(4, len(phys)))
        dist = np.maximum(d[:, 1:].mean(axis=1), 1e-6)
    else:
        dist = np.full(1, 0.1)
    # scales are in box units per axis: physical distance / extent of that axis
    log_scales = np.log(dist[:, None] / E[None, :])
    log_scales = np.clip(log_scales, *LOG_SCALE_RANGE)
    rot = np.zeros((len(u), 4))
    rot[:, 0] = 1.0
    return {
        "means": u.astype(np.float32),
        "log_scales": log_scales.astype(np.float32),
        "rotations": rot.astype(np.float32),
        "log_amplitudes": np.clip(np.log(np.maximum(amp, 1e-3)), *LOG_AMPLITUDE_RANGE).astype(np.float32),
    }


def init_random(num_gaussians: int = 2000, seed: int = 0, log_scale: float = -4.0, amplitude: float = 0.5) -> dict[str, np.ndarray]:
    """Initial parameters at uniform random positions in the box: isotropic
    ``log_scale``, identity rotation, amplitude ``amplitude`` (float32 arrays)."""
    if num_gaussians < 1:
        raise ValueError(f"--num-gaussians must be >= 1, got {num_gaussians}")
    rng = np.random.default_rng(seed)
    rot = np.zeros((num_gaussians, 4), np.float32)
    rot[:, 0] = 1.0
    return {
        "means": rng.uniform(0, 1, (num_gaussians, 3)).astype(np.float32),
        "log_scales": np.full((num_gaussians, 3), log_scale, np.float32),
        "rotations": rot,
        "log_amplitudes": np.full(num_gaussians, np.log(amplitude), np.float32),
    }


def physical_shapes(log_scales, rotations, extents) -> tuple[np.ndarray, np.ndarray]:
    """Log scales [K,3] and unit (w,x,y,z) rotations [K,4] of the Gaussians in physical
    coordinates ``p = u ⊙ E``: the eigendecomposition of ``D R S² Rᵀ D`` (``D = diag(E)``)."""
    R = quaternions_to_matrices(rotations)
    s = np.exp(np.asarray(log_scales, np.float64))
    L = np.asarray(extents, np.float64)[None, :, None] * (R * s[:, None, :])
    cov = L @ np.swapaxes(L, 1, 2)
    evals, evecs = np.linalg.eigh(cov)
    flip = np.linalg.det(evecs) < 0
    evecs[flip, :, 0] *= -1
    return 0.5 * np.log(np.maximum(evals, 1e-30)), matrices_to_quaternions(evecs)


def export_ply(params: dict[str, np.ndarray], path, extents=(1.0, 1.0, 1.0)) -> Path:
    """Write an INRIA-layout 3DGS PLY that splat viewers open.

    Mapping (documented choice; MIP has no colour or opacity):

    - positions: physical coordinates ``means ⊙ E`` (longest box side 1), with
      y and z as in the box (viewers may show the stack upside down);
    - shape: the physical covariance ``D Σ D`` (``D = diag(E)``, ``Σ`` the box-unit
      covariance) eigendecomposed into log scales (natural log, as 3DGS) and a
      unit quaternion (w, x, y, z -> rot_0..rot_3), exact for any box shape;
    - colour: grey with value ``min(amplitude, 1)`` through the degree-0 SH
      coefficient ``f_dc = (v - 0.5) / SH_C0``; no higher bands;
    - opacity: logit of ``clip(amplitude, 0.01, 0.99)``, so faint Gaussians are
      more transparent (a viewer's alpha blend then approximates the MIP look).

    Written by :func:`brushpy.io.ply.write_ply` (binary float32, zero normals).
    Returns the path written; raises ``OSError`` when it cannot be written.
    """
    from ..io.ply import SplatData, rgb_to_sh_dc, write_ply

    E = np.asarray(extents, np.float64)
    means = np.asarray(params["means"], np.float64) * E
    log_s, rot = physical_shapes(params["log_scales"], params["rotations"], E)
    amp = np.exp(np.asarray(params["log_amplitudes"], np.float64))
    dc = rgb_to_sh_dc(np.minimum(amp, 1.0))
    a = np.clip(amp, 0.01, 0.99)
    k = len(means)
    data = SplatData(
        means=means,
        rotations=rot,
        log_scales=log_s,
        sh_coeffs=np.repeat(dc[:, None, None], 3, axis=2),
        raw_opacities=np.log(a / (1 - a)),
        normals=np.zeros((k, 3), np.float32),  # the INRIA layout's (unused) nx, ny, nz
    )
    path = Path(path)
    write_ply(path, data)  # atomic; creates the folder
    return path
