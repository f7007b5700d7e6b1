"""Per-training-image exposure compensation (``--exposure``): a learned affine colour transform.

Phone and camera captures change exposure and white balance between frames; a splat set
cannot explain that, so it bakes the differences into floaters and view-dependent colour.
Each training image ``i`` gets its own transform, applied to the render before the loss::

    out.rgb = A_i · rgb + b_i,     out.alpha = alpha

``A_i`` is 3x3 (initialised to the identity), ``b_i`` a 3-vector (initialised to 0); the rgb
includes the rasterizer's background term. This is the per-image exposure of INRIA's
``gaussian-splatting`` (its 2024 update, from Hierarchical 3DGS, Kerbl et al. 2024): a
``[num_images, 3, 4]`` tensor initialised to ``eye(3, 4)``, trained with Adam at a rate decaying
exponentially over the run (``exposure_lr_init`` → ``exposure_lr_final``: 0.01 → 0.001 in its
code; 0.001 → 0.0001, after a delay, in the command its README gives for exposure
compensation). ``--lr-exposure`` / ``--lr-exposure-end`` default to the README's 0.001 →
0.0001: on beer_colmap the code defaults made held-out views 2.9 dB worse (docs/DEVELOPING.md,
"SH schedule and exposure"); the delay is not implemented. (INRIA multiplies the row vector,
``rgb · A``; brushpy writes the column form ``A · rgb``, the same model with ``A`` transposed.)
One Adam updates all images' transforms each step (the others with zero gradient, as INRIA's
single parameter tensor does). ``--exposure-reg-weight λ`` adds ``λ · ‖P_i − [I | 0]‖²`` for the
rendered image ``i`` to the loss (0 by default, as INRIA).

Layout: ``P`` = float32 ``[num_images, 12]``, row ``i`` = ``[A_i | b_i]`` 3x4 row-major
(``P[i, 4c + j] = A_i[c, j]``, ``P[i, 4c + 3] = b_i[c]``). Kernels: ``shaders/exposure.wgsl``;
float64 reference: ``tests/reference/exposure.py``.

Evaluation stays honest: held-out views have no learned transform, and
:meth:`brushpy.train.trainer.Trainer.evaluate` scores them uncompensated. The usual protocol
for trainers with appearance compensation (INRIA's ``--train_test_exp``: the test view's
exposure is optimised on its left half and the metrics are taken on its right half) is
:func:`fit_affine_colour` on the left half and :func:`split_fit_metrics` on the right
(``--eval-exposure-fit``).
"""

from __future__ import annotations

import numpy as np

from ..autodiff import Op
from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout, get_context, workgroups_for
from ..optim import Adam, AdamConfig, exponential_schedule

#: shaders/exposure.wgsl
EXPOSURE_PARAMS = UniformLayout("ExposureParams", [
    ("pixels", "u32", "H·W"),
    ("row", "u32", "the image's row of the transforms"),
    ("groups", "u32", "workgroups of the backward (partial sums)"),
    ("_pad0", "u32"),
    ("reg_weight", "f32", "λ of the L2 pull towards the identity"),
    ("_pad1", "f32"),
    ("_pad2", "f32"),
    ("_pad3", "f32"),
])

#: one image's identity transform ``[I | 0]`` as a row of 12
IDENTITY_ROW = np.array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0], np.float32)

_WG = 256


def identity_transforms(num_images: int) -> np.ndarray:
    """float32 ``[num_images, 12]``: every image's ``[I | 0]``."""
    return np.tile(IDENTITY_ROW, (int(num_images), 1))


def apply_affine_colour(rgb: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """``A · rgb + b`` per pixel, float64.

    Args:
        rgb: [..., 3] colours.
        transform: ``[A | b]`` as [3, 4] or a row of 12 (the layout above).

    Returns:
        float64 [..., 3].
    """
    p = np.asarray(transform, np.float64).reshape(3, 4)
    return np.asarray(rgb, np.float64)[..., :3] @ p[:, :3].T + p[:, 3]


def fit_affine_colour(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The affine colour transform ``[A | b]`` (float64 [3, 4]) minimising
    ``Σ_p ‖A · src[p] + b − dst[p]‖²`` (linear least squares, ``numpy.linalg.lstsq``).

    Args:
        src: [..., 3] colours (the render).
        dst: [..., 3] target colours (the ground truth), same pixel count.

    Raises:
        ValueError: shapes that do not match.
    """
    x = np.asarray(src, np.float64)[..., :3].reshape(-1, 3)
    y = np.asarray(dst, np.float64)[..., :3].reshape(-1, 3)
    if x.shape != y.shape:
        raise ValueError(f"fit_affine_colour: src has {x.shape[0]} pixels, dst {y.shape[0]}")
    design = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
    m, *_ = np.linalg.lstsq(design, y, rcond=None)  # [4, 3]: y ≈ design @ m
    return m.T.copy()


def split_fit_metrics(render: np.ndarray, gt: np.ndarray) -> dict:
    """INRIA's split protocol on one held-out view: fit the transform on the left half, score the right.

    The transform is :func:`fit_affine_colour` of the render's left half (columns ``< W // 2``)
    against the ground truth's; it is applied to the right half (columns ``≥ W // 2``), which is
    scored (PSNR and SSIM, :class:`brushpy.loss.ImageMetrics`, the right half as an image of
    its own) with and without it.

    Args:
        render: float32 [H, W, 3|4] render in [0, 1] (not clipped: as the plain evaluation).
        gt: float32 [H, W, 3] ground truth in [0, 1].

    Returns:
        ``{"psnr_fit", "ssim_fit"}`` (right half, transform applied), ``{"psnr_right",
        "ssim_right"}`` (right half as rendered), ``"transform"`` (float64 [3, 4]).
    """
    from ..loss import ImageMetrics

    render = np.asarray(render, np.float32)[..., :3]
    gt = np.asarray(gt, np.float32)[..., :3]
    half = render.shape[1] // 2
    transform = fit_affine_colour(render[:, :half], gt[:, :half])
    right = np.ascontiguousarray(render[:, half:])
    fitted = np.ascontiguousarray(apply_affine_colour(right, transform).astype(np.float32))
    gt_right = GpuTensor.from_numpy(np.ascontiguousarray(gt[:, half:]), "eval gt right half")
    metrics = ImageMetrics(capacity=2)
    rec = Recorder()
    metrics.record(rec, GpuTensor.from_numpy(fitted, "eval fitted right half"), gt_right)
    metrics.record(rec, GpuTensor.from_numpy(right, "eval render right half"), gt_right)
    rec.submit()
    fit, plain = metrics.read()
    return {"psnr_fit": fit["psnr"], "ssim_fit": fit["ssim"], "psnr_right": plain["psnr"],
            "ssim_right": plain["ssim"], "transform": transform}


class ExposureAdam(Adam):
    """Adam over the one tensor ``{"exposure": P}`` at ``lr → lr_end`` (exponential decay over
    ``total_steps``, :func:`brushpy.optim.exponential_schedule`), with :class:`AdamConfig`'s
    betas and epsilon. Only the learning rates differ from the splats' :class:`~brushpy.optim.Adam`."""

    def __init__(self, lr: float, lr_end: float, total_steps: int):
        super().__init__(AdamConfig(total_steps=int(total_steps)))
        self.lr, self.lr_end = float(lr), float(lr_end)

    def learning_rates(self, step: int) -> dict[str, float]:
        return {"exposure": exponential_schedule(step, self.config.total_steps, self.lr, self.lr_end)}


class Exposure:
    """The transforms of every training image, their kernels and their optimizer.

    Args:
        num_images: training images (one transform each, indexed like the trainer's views).
        lr, lr_end: ``--lr-exposure`` → ``--lr-exposure-end`` over ``total_steps``.
        reg_weight: ``--exposure-reg-weight`` λ.

    Attributes:
        params: float32 GpuTensor [num_images, 12] (the layout above), identity at start.
        grad: float32 [num_images, 12], the last backward's gradient (only the rendered row non-zero).
        adam: :class:`ExposureAdam`.
    """

    def __init__(self, num_images: int, lr: float = 0.001, lr_end: float = 0.0001, total_steps: int = 30000,
                 reg_weight: float = 0.0, ctx=None):
        if num_images < 1:
            raise ValueError(f"Exposure needs at least one image, got {num_images}")
        if not (lr > 0 and lr_end > 0):
            raise ValueError(f"--lr-exposure and --lr-exposure-end must be > 0, got {lr} and {lr_end}")
        if not reg_weight >= 0:
            raise ValueError(f"--exposure-reg-weight must be >= 0, got {reg_weight}")
        self.ctx = ctx or get_context()
        self.num_images = int(num_images)
        self.reg_weight = float(reg_weight)
        self.params = GpuTensor.from_numpy(identity_transforms(num_images), "exposure transforms", self.ctx)
        self.grad = GpuTensor.empty((self.num_images, 12), np.float32, "exposure grad", self.ctx)
        self.adam = ExposureAdam(lr, lr_end, total_steps)
        self._k_forward = Kernel("exposure.wgsl", "forward", ctx=self.ctx, structs=[EXPOSURE_PARAMS])
        self._k_backward = Kernel("exposure.wgsl", "backward", ctx=self.ctx, structs=[EXPOSURE_PARAMS])
        self._k_reduce = Kernel("exposure.wgsl", "reduce", ctx=self.ctx, structs=[EXPOSURE_PARAMS])
        self._buffers: dict[tuple[int, int], tuple[GpuTensor, GpuTensor, GpuTensor]] = {}
        # unused bindings: one read-only and one writable buffer (a buffer may not be both in one dispatch)
        self._dummy_read = GpuTensor.empty((4,), np.float32, "exposure unused (read)", self.ctx)
        self._dummy_write = GpuTensor.empty((4,), np.float32, "exposure unused (write)", self.ctx)

    def _check(self, image: GpuTensor, row: int) -> tuple[int, int]:
        if image.dtype != np.float32 or len(image.shape) != 3 or image.shape[2] != 4:
            raise ValueError(f"exposure: image must be float32 [H, W, 4], got {image.dtype.name} {image.shape}")
        if not 0 <= int(row) < self.num_images:
            raise ValueError(f"exposure: image index {row} is not in 0..{self.num_images - 1}")
        return image.shape[0], image.shape[1]

    def _scratch(self, h: int, w: int):
        """(corrected image, v_image, partials) for this size, kept and reused."""
        bufs = self._buffers.get((h, w))
        if bufs is None:
            gx, gy, _ = workgroups_for(h * w, _WG, self.ctx)
            bufs = (GpuTensor.empty((h, w, 4), np.float32, "exposure image", self.ctx),
                    GpuTensor.empty((h, w, 4), np.float32, "exposure v_image", self.ctx),
                    GpuTensor.empty((gx * gy, 12), np.float32, "exposure partials", self.ctx))
            self._buffers[(h, w)] = bufs
        return bufs

    def _uniform(self, h: int, w: int, row: int):
        gx, gy, _ = workgroups_for(h * w, _WG, self.ctx)
        return EXPOSURE_PARAMS.pack(pixels=h * w, row=int(row), groups=gx * gy, reg_weight=self.reg_weight), (gx, gy, 1)

    def forward(self, rec: Recorder, image: GpuTensor, row: int) -> GpuTensor:
        """Record ``A_row · rgb + b_row`` of ``image`` (float32 [H, W, 4]); returns the transformed
        image, a buffer reused for every call at this size (stage ``"exposure"``)."""
        h, w = self._check(image, row)
        out, _, _ = self._scratch(h, w)
        uni, grid = self._uniform(h, w, row)
        with rec.stage("exposure"):
            rec.dispatch(self._k_forward, {"params": uni, "exposure": self.params, "image": image, "out": out,
                                           "v_out": self._dummy_read, "v_image": self._dummy_write,
                                           "partials": self._dummy_write, "grad": self._dummy_write}, grid)
        return out

    def backward(self, rec: Recorder, image: GpuTensor, row: int, v_out: GpuTensor) -> tuple[GpuTensor, GpuTensor]:
        """Record the gradients of ``sum(out · v_out)`` (+ the L2 pull of row ``row``).

        Args:
            image: the untransformed image the forward read, float32 [H, W, 4].
            row: the image's index.
            v_out: ``dL/d out``, float32 [H, W, 4].

        Returns:
            ``(v_image, grad)``: ``dL/d image`` [H, W, 4] (a reused buffer) and :attr:`grad`
            [num_images, 12] (row ``row`` written, the others zero).
        """
        h, w = self._check(image, row)
        if v_out.dtype != np.float32 or tuple(v_out.shape) != (h, w, 4):
            raise ValueError(f"exposure: v_out must be float32 [{h}, {w}, 4], got {v_out.dtype.name} {v_out.shape}")
        _, v_image, partials = self._scratch(h, w)
        uni, grid = self._uniform(h, w, row)
        binds = {"params": uni, "exposure": self.params, "image": image, "out": self._dummy_write, "v_out": v_out,
                 "v_image": v_image, "partials": partials, "grad": self.grad}
        with rec.stage("exposure_backward"):
            rec.clear(self.grad)
            rec.dispatch(self._k_backward, binds, grid)
            rec.dispatch(self._k_reduce, binds, (1, 1, 1))
        return v_image, self.grad

    def step(self, rec: Recorder, grads, step: int) -> float:
        """Record the Adam update of :attr:`params` from ``grads`` (the tape's
        :class:`~brushpy.autodiff.Gradients` or ``{"exposure": gradient}``); returns the learning rate."""
        return self.adam.step(rec, {"exposure": self.params}, grads, step)["exposure"]

    def numpy(self) -> np.ndarray:
        """The transforms, float32 [num_images, 12]."""
        return self.params.numpy()

    # -- checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """``{"params": [num_images, 12], "adam.<key>": ...}`` (:meth:`Adam.state_dict`)."""
        out = {"params": self.numpy()}
        out.update({f"adam.{k}": v for k, v in self.adam.state_dict().items()})
        return out

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`.

        Raises:
            ValueError: the transforms are not [num_images, 12] for this run's image count.
        """
        p = np.asarray(state["params"], np.float32)
        if p.shape != (self.num_images, 12):
            raise ValueError(f"exposure transforms are {p.shape}, this run has {self.num_images} training images")
        self.params = GpuTensor.from_numpy(p, "exposure transforms", self.ctx)
        self.adam.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("adam.")})


class ExposureOp(Op):
    """The exposure transform as an autodiff op: records :meth:`Exposure.forward` on construction.

    inputs: ``{"image": image, "exposure": exposure.params}``; outputs: ``{"image": transformed}``.
    The backward is :meth:`Exposure.backward` (the image gradient per pixel, the transform's
    gradient reduced over the pixels on the GPU).
    """

    name = "exposure"

    def __init__(self, exposure: Exposure, rec: Recorder, image: GpuTensor, row: int):
        self.exposure = exposure
        self.image = image
        self.row = int(row)
        out = exposure.forward(rec, image, self.row)
        self.inputs = {"image": image, "exposure": exposure.params}
        self.outputs = {"image": out}

    def backward(self, rec: Recorder, grad_outputs: dict) -> dict:
        v_image, grad = self.exposure.backward(rec, self.image, self.row, grad_outputs["image"])
        return {"image": v_image, "exposure": grad}
