"""Volumes and their ground-truth maximum intensity projections.

A volume is a 3D array ``(Z, Y, X)`` read from a TIFF stack (tifffile) or a
``.npy`` file, converted to float32 and normalised to [0, 1] by
``(v - min) / (max - min)``. True MIPs follow the camera convention of
:mod:`brushpy.mip.camera`: each pixel's ray (through its centre) is sampled
every ``step`` voxels with trilinear interpolation
(``scipy.ndimage.map_coordinates``, order 1, mode "grid-constant": zeros outside the
volume, interpolated linearly across the last half voxel) and the
maximum sample is the pixel value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .camera import MipCamera


class VolumeError(InputError):
    """A volume file that cannot be used (unreadable, wrong shape, NaN, empty)."""


def load_volume(path) -> np.ndarray:
    """Read a (Z, Y, X) volume from ``.tif``/``.tiff`` or ``.npy``; float32 in [0, 1].

    Raises:
        VolumeError: unknown extension, an unreadable file (corrupt, truncated, a pickled
            object array), not 3D (after dropping singleton axes), not numbers, non-finite
            values, or an empty (constant, e.g. all-zero) volume; the message names the file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise VolumeError(f"volume file {path} does not exist")
    if suffix not in (".tif", ".tiff", ".npy"):
        raise VolumeError(f"volume file {path}: unsupported extension {suffix!r}; use a .tif/.tiff stack or a .npy (Z, Y, X) array")
    return normalise_volume(_read_array(path, "volume file"), str(path))


def _read_array(path: Path, what: str) -> np.ndarray:
    """The array in a ``.npy`` or ``.tif``/``.tiff`` file (no pickles), or a VolumeError naming it."""
    try:
        if path.suffix.lower() == ".npy":
            return np.load(str(path), allow_pickle=False)
        import tifffile

        return tifffile.imread(str(path))
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise VolumeError(f"{what} {path}: holds Python objects (an object-dtype array), not numbers; "
                              "save a numeric array, e.g. np.save(path, volume.astype(np.float32))") from None
        raise VolumeError(f"{what} {path}: cannot read it ({exc}); the file is corrupt or not an array") from None
    except (OSError, EOFError) as exc:  # (tifffile's TiffFileError is a ValueError)
        raise VolumeError(f"{what} {path}: cannot read it ({type(exc).__name__}: {exc}); the file is corrupt "
                          "or not an array") from None


def normalise_volume(arr, name: str = "volume") -> np.ndarray:
    """Validate a (Z, Y, X) array and scale it to float32 [0, 1] (see :func:`load_volume`)."""
    arr = np.asarray(arr)
    arr = np.squeeze(arr)
    if arr.ndim != 3:
        raise VolumeError(f"{name}: expected a 3D (Z, Y, X) volume, got shape {arr.shape}")
    if arr.dtype.kind not in "uif" and arr.dtype.kind != "b":
        raise VolumeError(f"{name}: unsupported voxel type {arr.dtype}")
    v = arr.astype(np.float32)
    if not np.all(np.isfinite(v)):
        bad = int(np.count_nonzero(~np.isfinite(v)))
        raise VolumeError(f"{name}: {bad} voxel(s) are NaN or infinite; clean the volume first")
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo or hi == 0.0:
        raise VolumeError(f"{name}: the volume is empty (every voxel is {lo:g}); nothing to fit")
    return ((v - lo) / (hi - lo)).astype(np.float32)


def true_mip(volume: np.ndarray, cam: MipCamera, step: float = 0.5, rows_per_chunk: int | None = None) -> np.ndarray:
    """Ground-truth MIP [H, W] float32 of ``volume`` (Z, Y, X) seen by ``cam``.

    Args:
        step: ray sampling interval in voxels (of the smallest physical voxel side).
    """
    from scipy.ndimage import map_coordinates

    vol = np.ascontiguousarray(volume, np.float32)
    nz, ny, nx = vol.shape
    n = np.array([nx, ny, nz], np.float64)
    Minv = np.linalg.inv(cam.M)
    # physical voxel sides in camera units: column norms of M divided by counts
    vox = np.linalg.norm(cam.M, axis=0) / n
    dz = float(step) * float(vox.min())
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], np.float64)
    cz = (corners @ cam.M.T + cam.t)[:, 2]
    z0, z1 = float(cz.min()), float(cz.max())
    if not cam.orthographic:
        z0 = max(z0, 1e-3)
    zs = np.arange(z0, z1 + dz, dz)
    H, W = cam.height, cam.width
    out = np.zeros((H, W), np.float32)
    xs = (np.arange(W) + 0.5 - cam.cx) / cam.fx
    chunk = rows_per_chunk or max(1, int(2e6 // max(1, W * len(zs))))
    for r0 in range(0, H, chunk):
        rows = np.arange(r0, min(H, r0 + chunk))
        ys = (rows + 0.5 - cam.cy) / cam.fy
        X = np.broadcast_to(xs[None, :, None], (len(rows), W, len(zs)))
        Y = np.broadcast_to(ys[:, None, None], (len(rows), W, len(zs)))
        Z = np.broadcast_to(zs[None, None, :], (len(rows), W, len(zs)))
        if cam.orthographic:
            c = np.stack([X, Y, Z], -1)
        else:
            c = np.stack([X * Z, Y * Z, Z], -1)
        u = (c - cam.t) @ Minv.T
        idx = u * n - 0.5  # (x, y, z) voxel index coordinates
        coords = np.stack([idx[..., 2].ravel(), idx[..., 1].ravel(), idx[..., 0].ravel()])
        vals = map_coordinates(vol, coords, order=1, mode="grid-constant", cval=0.0, prefilter=False)
        out[rows] = vals.reshape(len(rows), W, len(zs)).max(axis=-1)
    return out


def true_mips(volume: np.ndarray, cams: list[MipCamera], step: float = 0.5) -> list[np.ndarray]:
    """:func:`true_mip` for each camera."""
    return [true_mip(volume, c, step) for c in cams]


def load_projection_image(path, resolution=None) -> np.ndarray:
    """A user-supplied projection image (PNG/TIFF/.npy, grey or RGB) as float32 [H, W] in [0, 1].

    8/16-bit integers are divided by their maximum code; floats are used as is
    (clipped to [0, 1]); colour images are averaged. ``resolution`` (H, W)
    resizes with bilinear filtering when given.

    Raises:
        VolumeError: an unreadable file, not a 2D numeric image, or NaN/infinite values (names it).
    """
    path = Path(path)
    if path.suffix.lower() in (".npy", ".tif", ".tiff"):
        arr = _read_array(path, "projection image")
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                arr = np.asarray(im)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise VolumeError(f"projection image {path}: cannot read it ({exc})") from None
    arr = np.asarray(arr)
    if arr.dtype.kind not in "uifb":
        raise VolumeError(f"projection image {path}: unsupported pixel type {arr.dtype}; give a numeric image")
    if arr.ndim == 3:
        arr = arr[..., :3].mean(axis=-1) if arr.shape[-1] in (3, 4) else arr.max(axis=0)
    if arr.ndim != 2:
        raise VolumeError(f"projection image {path}: expected a 2D image, got shape {arr.shape}")
    if arr.dtype.kind in "ui":
        img = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    else:
        img = arr.astype(np.float32)
    if not np.all(np.isfinite(img)):
        raise VolumeError(f"projection image {path}: contains NaN or infinite values")
    img = np.clip(img, 0.0, 1.0)
    if resolution is not None and tuple(img.shape) != tuple(resolution):
        from PIL import Image

        img = np.asarray(Image.fromarray(img).resize((int(resolution[1]), int(resolution[0])), Image.BILINEAR), np.float32)
    return img
