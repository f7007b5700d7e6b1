"""Fused L1 + SSIM training loss on the GPU (forward and backward in two kernels).

Loss (Brush's, with gsplat/3DGS's SSIM)::

    E[p, c] = (1 - w) |x[p,c] - y[p,c]| + w (1 - S[p,c])          c in R, G, B
    L       = mean_{p,c} ( m[p] E[p, c] )  +  a · mean_p |x[p,3] - y_alpha[p]|

- ``x`` is the rendered image, whose rgb already holds the rasterizer's
  background term (``rgb + T·bg``); ``x[...,3] = 1 - T``.
- ``y`` is the ground truth composited over the *same* background as the render
  (see :func:`composite_ground_truth`).
- ``S`` is the SSIM map: 11-tap Gaussian window, σ = 1.5, separable, zero
  padding, per channel, C1 = 0.01², C2 = 0.03² (Wang et al. 2004; the form
  used by 3DGS, gsplat and Brush).
- ``w`` = ``ssim_weight`` (``--ssim-weight``, default 0.2).
- ``m`` is the mask (masked mode) or 1. Means are over all H·W pixels (times 3
  channels), as in Brush: a mask does not renormalise by its area.
- ``a`` = ``match_alpha_weight`` (``--match-alpha-weight``, default 0.1), only in
  ``alpha_mode="transparent"``.

Gradient: ``v_image [H,W,4] = dL/dx`` (rgb from the L1 and SSIM terms, alpha
from the alpha term; ``|·|`` has derivative 0 at 0, as in PyTorch), the seed of
the render backward.

Background noise convention (``--background-noise-strength``): each training
step the trainer draws ``bg_step = background + strength · u`` with
``u ~ U[0, 1)³`` per channel (:func:`noisy_background`), passes ``bg_step`` to
the rasterizer *and* to :meth:`ImageLoss.record` so both sides of the loss see
the same background. Opaque ground truth ignores the background.
"""

from __future__ import annotations

import math

import numpy as np

from ..autodiff import FusedLossOp
from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2
TILE = 16

ALPHA_MODES = ("opaque", "transparent", "masked")

FLAG_COMPOSITE_GT = 1
FLAG_ALPHA_LOSS = 2
FLAG_MASK_BUFFER = 4
FLAG_MASK_GT_ALPHA = 8
FLAG_PREMULTIPLIED = 16

#: the uniform block of shaders/loss_ssim.wgsl (``#struct LossParams``), loss and metrics
LOSS_PARAMS = UniformLayout("LossParams", [
    ("bg", "vec4<f32>", "background composited under the ground truth (rgb)"),
    ("width", "u32"),
    ("height", "u32"),
    ("flags", "u32", "see FLAG_* below"),
    ("tiles_x", "u32"),
    ("ssim_weight", "f32", "w in (1-w) L1 + w (1 - SSIM)"),
    ("alpha_weight", "f32", "weight of |alpha - alpha_gt|"),
    ("inv_rgb_count", "f32", "1 / (3 H W)"),
    ("inv_pixel_count", "f32", "1 / (H W)"),
])
#: the uniform block of shaders/loss_reduce.wgsl (``#struct ReduceParams``)
REDUCE_PARAMS = UniformLayout("ReduceParams", [
    ("count", "u32", "number of partial pairs"),
    ("out_offset", "u32", "first output element"),
    ("_pad0", "u32"),
    ("_pad1", "u32"),
])


def reduce_kernel() -> Kernel:
    """The kernel of shaders/loss_reduce.wgsl (sums per-tile partial pairs)."""
    return Kernel("loss_reduce.wgsl", structs=[REDUCE_PARAMS])


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1D Gaussian taps, float64 [size], centred (the SSIM window)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _gauss_literal() -> str:
    return ", ".join(f"{float(v):.9e}" for v in gaussian_window().astype(np.float32))


def noisy_background(background, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Per-step training background: ``background + strength · U[0,1)³`` (float32 [3]).

    Args:
        background: rgb in [0, 1] (``--background-color``).
        strength: ``--background-noise-strength`` (0 disables the noise).
        rng: the trainer's generator (one draw of 3 numbers per step).
    """
    bg = np.asarray(background, dtype=np.float64).reshape(3)
    if strength:
        bg = bg + float(strength) * rng.random(3)
    return bg.astype(np.float32)


def pack_rgba8(image, mask=None) -> np.ndarray:
    """Pack an 8-bit image into one uint32 per pixel (the packed ground truth the loss reads).

    Byte order is R, G, B, A from the least significant byte (what WGSL's
    ``unpack4x8unorm`` reads). Alpha is ``mask`` when given, else the image's
    alpha channel, else 255.

    Args:
        image: uint8 [H,W,3] or [H,W,4].
        mask: optional uint8 [H,W].

    Returns:
        uint32 [H,W].

    Raises:
        ValueError: ``image`` is not uint8 [H,W,3|4], or ``mask`` not uint8 [H,W].
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"pack_rgba8: expected uint8 [H,W,3|4], got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    rgba = np.empty((h, w, 4), np.uint8)
    rgba[..., :3] = image[..., :3]
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != (h, w) or mask.dtype != np.uint8:
            raise ValueError(f"pack_rgba8: mask must be uint8 [{h},{w}], got {mask.dtype} {mask.shape}")
        rgba[..., 3] = mask
    elif image.shape[2] == 4:
        rgba[..., 3] = image[..., 3]
    else:
        rgba[..., 3] = 255
    return rgba.view("<u4").reshape(h, w).astype(np.uint32, copy=False)


def _kernel(entry: str, gt: GpuTensor, img_channels: int, metric: bool) -> Kernel:
    defines = {
        "GAUSS": _gauss_literal(),
        "IMG_CHANNELS": img_channels,
        "GT_PACKED": gt.dtype == np.uint32,
        "GT_RGB": gt.dtype != np.uint32 and gt.shape[-1] == 3,
        "METRIC": metric,
    }
    return Kernel("loss_ssim.wgsl", entry, defines, structs=[LOSS_PARAMS])


def check_image(t: GpuTensor, name: str, channels=(4,)) -> tuple[int, int]:
    """Validate a float32 [H, W, C] image tensor; returns (H, W)."""
    if not isinstance(t, GpuTensor):
        raise TypeError(f"{name} must be a GpuTensor, got {type(t).__name__}")
    if t.dtype != np.float32 or len(t.shape) != 3 or t.shape[2] not in channels:
        raise ValueError(f"{name} must be float32 [H, W, {'|'.join(map(str, channels))}], got {t.dtype.name} {t.shape}")
    return t.shape[0], t.shape[1]


def check_ground_truth(gt: GpuTensor, hw: tuple[int, int], name: str = "gt") -> None:
    """Validate a ground truth: packed RGBA8 u32 [H, W] or float32 [H, W, 3|4] matching ``hw``."""
    if not isinstance(gt, GpuTensor):
        raise TypeError(f"{name} must be a GpuTensor, got {type(gt).__name__}")
    if gt.dtype == np.uint32:
        ok = tuple(gt.shape) == tuple(hw)
    else:
        ok = gt.dtype == np.float32 and len(gt.shape) == 3 and gt.shape[:2] == tuple(hw) and gt.shape[2] in (3, 4)
    if not ok:
        raise ValueError(
            f"{name} must be packed RGBA8 uint32 [{hw[0]}, {hw[1]}] or float32 [{hw[0]}, {hw[1]}, 3|4] "
            f"matching the render, got {gt.dtype.name} {gt.shape}"
        )


class ImageLoss:
    """Fused L1 + SSIM (+ alpha L1, + mask) loss: records forward and backward into a recorder.

    Args:
        ssim_weight: ``w`` in ``(1-w)·L1 + w·(1-SSIM)`` (``--ssim-weight``, 0.2).
        match_alpha_weight: weight of ``|α - α_gt|`` in transparent mode (``--match-alpha-weight``, 0.1).

    Attributes:
        loss: GpuTensor float32 [2]; ``loss[0]`` is the scalar loss of the last
            recorded step (read it with :meth:`read_loss` only when needed).

    Scratch buffers (the SSIM derivative maps, 36 bytes per pixel, and per-tile
    partial sums) are kept and reused while the image size stays the same.
    """

    def __init__(self, ssim_weight: float = 0.2, match_alpha_weight: float = 0.1):
        if not 0.0 <= ssim_weight <= 1.0:
            raise ValueError(f"ssim_weight (--ssim-weight) must be in [0, 1], got {ssim_weight}")
        if match_alpha_weight < 0:
            raise ValueError(f"match_alpha_weight (--match-alpha-weight) must be >= 0, got {match_alpha_weight}")
        self.ssim_weight = float(ssim_weight)
        self.match_alpha_weight = float(match_alpha_weight)
        self.loss = GpuTensor.empty((2,), np.float32, "loss")
        self._dummy_mask = GpuTensor.empty((4,), np.float32, "loss mask (unused)")
        self._scratch_hw = None
        self._dmaps = None
        self._partials = None
        self._reduce = reduce_kernel()
        #: the scalar loss as a tensor of its own (a [1] view of :attr:`loss`), the output of :class:`ImageLossOp`
        self.loss_value = GpuTensor.view_of(self.loss.buffer, (1,), np.dtype(np.float32), "loss value", self.loss.ctx)
        #: f32 [1] = 1, the seed gradient of :attr:`loss_value` (never written)
        self.unit_seed = GpuTensor.from_numpy(np.ones(1, np.float32), "loss seed (1)")

    def _scratch(self, h: int, w: int):
        if self._scratch_hw != (h, w):
            tiles = math.ceil(w / TILE) * math.ceil(h / TILE)
            self._dmaps = GpuTensor.empty((h, w, 3, 3), np.float32, "ssim derivative maps")
            self._partials = GpuTensor.empty((tiles, 2), np.float32, "loss tile partials")
            self._scratch_hw = (h, w)
        return self._dmaps, self._partials

    def record(
        self,
        rec: Recorder,
        image: GpuTensor,
        gt: GpuTensor,
        *,
        background=(0.0, 0.0, 0.0),
        alpha_mode: str = "opaque",
        mask: GpuTensor | None = None,
        gt_premultiplied: bool = False,
        v_image: GpuTensor | None = None,
    ) -> GpuTensor:
        """Record the loss forward + backward; returns ``v_image`` (float32 [H, W, 4]).

        Args:
            rec: the step's recorder (stages "loss_forward", "loss_backward").
            image: rendered float32 [H, W, 4], rgb already over ``background``.
            gt: ground truth, packed RGBA8 uint32 [H, W] (r in the low byte, see
                :func:`pack_rgba8`) or float32 [H, W, 3|4] in [0, 1], straight alpha
                unless ``gt_premultiplied``.
            background: rgb the render was composited over this step (with its noise).
            alpha_mode: ``"opaque"`` (gt alpha ignored), ``"transparent"`` (gt
                composited over ``background``: ``rgb·α + (1-α)·bg``, or ``rgb + (1-α)·bg``
                when premultiplied; plus the alpha L1 term), or ``"masked"`` (the loss map
                is multiplied by ``mask`` [H, W] float32 if given, else by the gt alpha;
                gt rgb is used as is).
            mask: float32 [H, W] weights for ``"masked"`` (ignored otherwise).
            v_image: output tensor to fill (allocated when None).

        Raises:
            ValueError / TypeError: on shapes, dtypes or an unknown ``alpha_mode``.
        """
        h, w = check_image(image, "image (rendered)", (4,))
        check_ground_truth(gt, (h, w))
        if alpha_mode not in ALPHA_MODES:
            raise ValueError(f"alpha_mode must be one of {ALPHA_MODES} (--alpha-mode), got {alpha_mode!r}")
        flags = 0
        if alpha_mode == "transparent":
            flags |= FLAG_COMPOSITE_GT | FLAG_ALPHA_LOSS
            if gt_premultiplied:
                flags |= FLAG_PREMULTIPLIED
        mask_t = self._dummy_mask
        if alpha_mode == "masked":
            if mask is not None:
                if mask.dtype != np.float32 or tuple(mask.shape) not in ((h, w), (h, w, 1)):
                    raise ValueError(f"mask must be float32 [{h}, {w}], got {mask.dtype.name} {mask.shape}")
                flags |= FLAG_MASK_BUFFER
                mask_t = mask
            else:
                flags |= FLAG_MASK_GT_ALPHA
        if v_image is None:
            v_image = GpuTensor.empty((h, w, 4), np.float32, "v_image")
        elif v_image.dtype != np.float32 or tuple(v_image.shape) != (h, w, 4):
            raise ValueError(f"v_image must be float32 [{h}, {w}, 4], got {v_image.dtype.name} {v_image.shape}")
        dmaps, partials = self._scratch(h, w)
        tiles_x, tiles_y = math.ceil(w / TILE), math.ceil(h / TILE)
        bg = np.zeros(4, np.float32)
        bg[:3] = np.asarray(background, np.float32).reshape(3)
        uni = LOSS_PARAMS.pack(
            bg=bg, width=w, height=h, flags=flags, tiles_x=tiles_x,
            ssim_weight=self.ssim_weight, alpha_weight=self.match_alpha_weight,
            inv_rgb_count=1.0 / (3.0 * h * w), inv_pixel_count=1.0 / (h * w),
        )
        binds = {"params": uni, "image": image, "gt": gt, "mask": mask_t, "dmaps": dmaps, "partials": partials,
                 "v_image": v_image}
        with rec.stage("loss_forward"):
            rec.dispatch(_kernel("forward", gt, 4, False), binds, (tiles_x, tiles_y, 1))
            rec.dispatch(
                self._reduce,
                {"params": REDUCE_PARAMS.pack(count=tiles_x * tiles_y, out_offset=0), "partials": partials, "out": self.loss},
                (1, 1, 1),
            )
        with rec.stage("loss_backward"):
            rec.dispatch(_kernel("backward", gt, 4, False), binds, (tiles_x, tiles_y, 1))
        return v_image

    def read_loss(self) -> float:
        """The last recorded loss as a Python float (waits for the GPU)."""
        return float(self.loss.numpy()[0])


class ImageLossOp(FusedLossOp):
    """The fused image loss as an autodiff op: records :meth:`ImageLoss.record` on construction.

    The loss kernels compute the gradient ``v_image = dL/d image`` together with the
    forward (one fused pass), so the backward records nothing: it returns that
    precomputed ``v_image``. That is ``dL/d image`` for a seed gradient of exactly 1,
    so the op must be seeded with :attr:`seed` (the loss's own unit tensor); any other
    seed raises.

    inputs: ``{"image": image}`` float32 [H, W, 4]; ``gt`` (and ``mask``) are constants.
    outputs: ``{"loss": loss_fn.loss_value}`` float32 [1] (on the GPU; read it with
    :meth:`ImageLoss.read_loss`).

    Args:
        loss_fn: the :class:`ImageLoss` (its scratch and loss buffers are reused).
        rec: the step's recorder.
        image, gt, **kwargs: as :meth:`ImageLoss.record` (``background``, ``alpha_mode``,
            ``mask``, ``gt_premultiplied``, ``v_image`` to reuse a buffer).

    Example::

        loss = tape.record(ImageLossOp(loss_fn, rec, render.outputs["image"], gt, v_image=buf))
        grads = tape.backward(rec, loss.seed)
    """

    name = "loss"

    def __init__(self, loss_fn: ImageLoss, rec: Recorder, image: GpuTensor, gt: GpuTensor, **kwargs):
        self.loss_fn = loss_fn
        self._set(image, loss_fn.loss_value, loss_fn.unit_seed, loss_fn.record(rec, image, gt, **kwargs))


def l1_ssim_loss(image: GpuTensor, gt: GpuTensor, *, ssim_weight: float = 0.2, match_alpha_weight: float = 0.1, **kwargs) -> tuple[float, GpuTensor]:
    """One-shot convenience: ``(loss, v_image)`` for one image pair (see :meth:`ImageLoss.record`)."""
    fn = ImageLoss(ssim_weight, match_alpha_weight)
    rec = Recorder()
    v = fn.record(rec, image, gt, **kwargs)
    rec.submit()
    return fn.read_loss(), v
