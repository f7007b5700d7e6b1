"""Image quality metrics on the GPU: PSNR and SSIM.

- SSIM: the loss's definition (11-tap Gaussian window σ 1.5, zero padding,
  C1 = 0.01², C2 = 0.03², see :mod:`brushpy.loss.image_loss`), reported as the
  mean of the SSIM map over all pixels and the R, G, B channels.
- PSNR: ``-10·log10(MSE)`` with the MSE over all pixels and R, G, B, for images
  in [0, 1] (peak 1). Identical images give ``inf``.

Neither clamps its inputs; alpha channels are ignored (composite first).

- Depth: :func:`depth_abs_rel`, the absolute relative error (AbsRel) of a rendered
  depth against a sensor depth, on the host.

For evaluation over many views, :class:`ImageMetrics` records any number of
pairs into one recorder and reads all sums back with a single copy.
"""

from __future__ import annotations

import math

import numpy as np

from ..gpu import GpuTensor, Recorder, get_context
from .image_loss import LOSS_PARAMS, REDUCE_PARAMS, TILE, _kernel, check_ground_truth, check_image, reduce_kernel


def _psnr_from_mse(mse: float) -> float:
    return float("inf") if mse <= 0 else float(-10.0 * math.log10(mse))


class ImageMetrics:
    """Batched PSNR/SSIM: record pairs, then read every result at once.

    Args:
        capacity: how many pairs may be recorded between two :meth:`read` calls.

    Example::

        m = ImageMetrics(capacity=len(views))
        rec = Recorder()
        for img, gt in pairs:
            m.record(rec, img, gt)
        rec.submit()
        results = m.read()   # [{"psnr": ..., "ssim": ...}, ...] in record order
    """

    def __init__(self, capacity: int = 64):
        if capacity < 1:
            raise ValueError(f"ImageMetrics capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.results = GpuTensor.empty((self.capacity, 2), np.float32, "metric sums")
        self._reduce = reduce_kernel()
        self._dummy_in = GpuTensor.empty((4,), np.float32, "metrics unused mask")
        self._dummy_maps = GpuTensor.empty((4,), np.float32, "metrics unused dmaps")
        self._dummy_out = GpuTensor.empty((4,), np.float32, "metrics unused v_image")
        self._counts: list[int] = []
        self._sizes: list[tuple[int, int]] = []
        self._partials: dict[tuple[int, int], list[GpuTensor]] = {}

    def record(self, rec: Recorder, image: GpuTensor, gt: GpuTensor) -> int:
        """Record metrics of ``image`` against ``gt``; returns the slot index.

        Args:
            image: float32 [H, W, 3|4] in [0, 1].
            gt: float32 [H, W, 3|4] in [0, 1] or packed RGBA8 uint32 [H, W].

        Raises:
            RuntimeError: when ``capacity`` pairs are already pending.
        """
        if len(self._counts) >= self.capacity:
            raise RuntimeError(f"ImageMetrics holds {self.capacity} pending results; call read() first or raise capacity")
        h, w = check_image(image, "image", (3, 4))
        check_ground_truth(gt, (h, w))
        slot = len(self._counts)
        tiles_x, tiles_y = math.ceil(w / TILE), math.ceil(h / TILE)
        # a partials buffer per pending slot of this size (reused after read())
        pool = self._partials.setdefault((h, w), [])
        used = self._sizes.count((h, w))
        if used >= len(pool):
            pool.append(GpuTensor.empty((tiles_x * tiles_y, 2), np.float32, "metric tile partials"))
        partials = pool[used]
        # the metric reads only the sizes; the loss's weights and flags stay 0
        params = LOSS_PARAMS.pack(bg=0, width=w, height=h, flags=0, tiles_x=tiles_x, ssim_weight=0.0, alpha_weight=0.0,
                                  inv_rgb_count=0.0, inv_pixel_count=0.0)
        binds = {"params": params, "image": image, "gt": gt, "mask": self._dummy_in, "dmaps": self._dummy_maps,
                 "partials": partials, "v_image": self._dummy_out}
        with rec.stage("metrics"):
            rec.dispatch(_kernel("forward", gt, image.shape[2], True), binds, (tiles_x, tiles_y, 1))
            rec.dispatch(
                self._reduce,
                {"params": REDUCE_PARAMS.pack(count=tiles_x * tiles_y, out_offset=2 * slot), "partials": partials,
                 "out": self.results},
                (1, 1, 1),
            )
        self._counts.append(h * w * 3)
        self._sizes.append((h, w))
        return slot

    def read(self) -> list[dict[str, float]]:
        """Results of all recorded pairs, ``[{"psnr": dB, "ssim": mean}, ...]``; resets the batch."""
        n = len(self._counts)
        if n == 0:
            return []
        sums = self.results.numpy()[:n].astype(np.float64)
        out = []
        for (s_sum, sq_sum), count in zip(sums, self._counts):
            out.append({"psnr": _psnr_from_mse(sq_sum / count), "ssim": float(s_sum / count)})
        self._counts = []
        self._sizes = []
        return out


def _new_metrics(_ctx) -> ImageMetrics:
    return ImageMetrics(capacity=1)


def _metrics() -> ImageMetrics:
    """The one-pair :class:`ImageMetrics` of the current context (in its cache)."""
    return get_context().cache(_new_metrics, _new_metrics)


def evaluate(image: GpuTensor, gt: GpuTensor) -> dict[str, float]:
    """``{"psnr": dB, "ssim": mean}`` for one pair (one GPU pass, one readback)."""
    m = _metrics()
    m.read()
    rec = Recorder()
    m.record(rec, image, gt)
    rec.submit()
    return m.read()[0]


def psnr(image: GpuTensor, gt: GpuTensor) -> float:
    """PSNR in dB of ``image`` against ``gt`` (RGB, peak 1); ``inf`` when identical."""
    return evaluate(image, gt)["psnr"]


def ssim(image: GpuTensor, gt: GpuTensor) -> float:
    """Mean SSIM over pixels and RGB channels (window 11, σ 1.5, zero padding)."""
    return evaluate(image, gt)["ssim"]


def depth_abs_rel(depth, gt_depth) -> tuple[float, int]:
    """AbsRel of a rendered depth against a sensor depth: ``mean(|d − gt| / gt)`` over the pixels
    with a valid ``gt`` (finite, > 0), the standard monocular-depth metric (Eigen et al. 2014).

    Pixels the render leaves empty (depth 0) count with error 1, so an incomplete render is not
    flattered.

    Args:
        depth: rendered depth, float [H, W] (e.g. ``ForwardState.depth`` with ``outputs="ED"``).
        gt_depth: sensor depth, float [H, W], same units; 0 (or non-finite) = invalid.

    Returns:
        ``(abs_rel, valid_pixels)``; ``(nan, 0)`` when no pixel is valid.

    Raises:
        ValueError: the shapes differ.
    """
    d = np.asarray(depth, np.float64)
    g = np.asarray(gt_depth, np.float64)
    if d.shape != g.shape:
        raise ValueError(f"depth {d.shape} and gt_depth {g.shape} must have the same shape")
    valid = np.isfinite(g) & (g > 0)
    n = int(valid.sum())
    if n == 0:
        return float("nan"), 0
    dv = np.where(np.isfinite(d[valid]), d[valid], 0.0)
    return float(np.mean(np.abs(dv - g[valid]) / g[valid])), n

