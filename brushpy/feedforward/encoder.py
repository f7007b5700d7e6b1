"""The feed-forward encoder: K = 2 posed context views → depth → pixel-aligned Gaussians.

DepthSplat's structure (Xu et al., "DepthSplat: Connecting Gaussian Splatting and Depth",
CVPR 2025; its multi-view branch follows MVSplat, Chen et al. 2024), made small enough to train
on lavapipe. For each context view ``i`` (the other view ``j`` is its source):

1. **features** (shared weights, every view): conv3x3/s2 (3→C/2) + GroupNorm + ReLU, conv3x3/s2
   (C/2→C) + GroupNorm + ReLU, conv3x3 (C→C): ``F_i`` [C, H/4, W/4];
2. **cost volume**: ``F_j`` warped into view i at D fronto-parallel planes uniform in inverse
   depth between ``1/near`` and ``1/far`` (:func:`brushpy.nn.plane_sweep_warp`, cameras scaled to
   the feature resolution), correlated per plane ``Σ_c F_i·F_j→i / C`` (:func:`brushpy.nn.correlation`)
   → [D, H/4, W/4];
3. **U-Net** (2 levels) over concat(cost volume, F_i): conv3x3 (D+C→U) + GN + ReLU → conv3x3/s2
   (U→2U) + GN + ReLU → conv3x3 (2U→2U) + ReLU → bilinear ×2 → concat with the first level →
   conv3x3 (3U→U) + ReLU → conv1x1 (U→D): depth logits;
4. **depth**: softmax over the D planes, expected inverse depth ``Σ_d p_d / depth_d`` (a conv1x1
   with the fixed plane inverse depths as weights), bilinear ×4 to full resolution;
5. **Gaussian head**: conv3x3 (C+U→G) + ReLU on concat(F_i, U-Net output), bilinear ×4, concat with
   the image, conv1x1 (G+3→12): per pixel depth offset, opacity, scales, rotation, SH DC
   (:mod:`brushpy.feedforward.lift`);
6. **lift** both views' pixels with their cameras: one :class:`~brushpy.render.splats.Splats`
   set of ``2·H·W`` Gaussians.

Every stage is a tape op, so a loss on renders of those splats reaches every weight. Images are
NCHW float32 in [0, 1]; H and W must be multiples of 8 (two stride-2 convs, then the U-Net's).
Cameras: :class:`brushpy.render.camera.Camera` at the image size, OpenCV axes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..autodiff import Tape
from ..errors import InputError
from ..gpu import GpuTensor, Recorder
from ..nn import (Conv2d, GroupNorm, NetParams, concat_channels, conv2d, correlation, plane_sweep_warp, relu,
                  softmax_depth, upsample_bilinear)
from .lift import HEAD_CHANNELS, PixelLiftOp

#: the architecture name stored in weights files (``architecture`` metadata)
ARCHITECTURE = "brushpy-depthsplat-lite-1"


class FeedForwardInputError(InputError):
    """Context views the encoder cannot use (sizes, overlap, count); the message names what to change."""


@dataclass(frozen=True)
class EncoderConfig:
    """The encoder's size (stored in weights files; another configuration is another architecture).

    Attributes:
        feature_channels: C, channels of the 1/4-resolution features (even).
        unet_channels: U, channels of the U-Net's first level.
        head_channels: G, channels of the Gaussian head's hidden layer.
        num_planes: D, depth candidates of the cost volume (>= 2).
        groups: groups of the GroupNorms (divides C/2, C, U and 2U).
    """

    feature_channels: int = 16
    unet_channels: int = 8
    head_channels: int = 12
    num_planes: int = 16
    groups: int = 4

    def validate(self) -> None:
        c, u, g = self.feature_channels, self.unet_channels, self.groups
        if min(c, u, self.head_channels) < 1 or self.num_planes < 2 or g < 1:
            raise ValueError(f"encoder config {self}: channel counts must be >= 1 and num_planes >= 2")
        if c % 2 or (c // 2) % g or c % g or u % g:
            raise ValueError(f"encoder config {self}: groups={g} must divide feature_channels/2, "
                             "feature_channels and unet_channels (feature_channels even)")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "weights") -> "EncoderConfig":
        """Parse :meth:`to_json`'s output.

        Raises:
            InputError: not a JSON object of this class's fields (names ``source``).
        """
        try:
            raw = json.loads(text)
            names = {f.name for f in fields(cls)}
            if not isinstance(raw, dict) or set(raw) - names:
                raise ValueError(f"unexpected fields {sorted(set(raw) - names) if isinstance(raw, dict) else raw}")
            cfg = cls(**{k: int(v) for k, v in raw.items()})
            cfg.validate()
        except (ValueError, TypeError) as exc:
            raise InputError(f"{source}: the encoder configuration in the file is not readable ({exc})") from None
        return cfg


def plane_inverse_depths(near: float, far: float, num_planes: int) -> np.ndarray:
    """D inverse depths uniform from ``1/near`` to ``1/far`` (float64, descending; plane 0 nearest).

    Raises:
        FeedForwardInputError: not ``0 < near < far`` (finite).
    """
    if not (np.isfinite(near) and np.isfinite(far) and 0 < near < far):
        raise FeedForwardInputError(f"depth range: need 0 < near < far, got near={near}, far={far} (--near/--far)")
    return np.linspace(1.0 / near, 1.0 / far, int(num_planes))


@dataclass
class EncoderOutput:
    """What :meth:`Encoder.forward` recorded.

    Attributes:
        splats: the lifted Gaussians (``Splats``, ``2·H·W``, SH degree 0), outputs of the lift op.
        inv_depth: per view float32 [1, 1, H, W] predicted inverse depth (before the head's offset).
        probs: per view float32 [1, D, H/4, W/4] softmax over the planes.
        masks: per view float32 [D, H/4, W/4] validity of the cost-volume samples.
        inv_planes: float64 [D] the planes' inverse depths.
        lift: the :class:`PixelLiftOp`.
    """

    splats: object
    inv_depth: list
    probs: list
    masks: list
    inv_planes: np.ndarray
    lift: PixelLiftOp


class Encoder:
    """The encoder's layers and weights (see the module docstring).

    Args:
        config: sizes (:class:`EncoderConfig`).
        seed: seed of the He initialisation.
    """

    def __init__(self, config: EncoderConfig | None = None, seed: int = 0):
        self.config = cfg = config or EncoderConfig()
        cfg.validate()
        self.params = p = NetParams(seed)
        c, u, d, g, gh = cfg.feature_channels, cfg.unet_channels, cfg.num_planes, cfg.groups, cfg.head_channels
        self.f1 = Conv2d(p, "feat.conv1", 3, c // 2, 3, stride=2)
        self.f1n = GroupNorm(p, "feat.norm1", g, c // 2)
        self.f2 = Conv2d(p, "feat.conv2", c // 2, c, 3, stride=2)
        self.f2n = GroupNorm(p, "feat.norm2", g, c)
        self.f3 = Conv2d(p, "feat.conv3", c, c, 3)
        self.u_in = Conv2d(p, "unet.in", d + c, u, 3)
        self.u_in_n = GroupNorm(p, "unet.in_norm", g, u)
        self.u_down = Conv2d(p, "unet.down", u, 2 * u, 3, stride=2)
        self.u_down_n = GroupNorm(p, "unet.down_norm", g, 2 * u)
        self.u_mid = Conv2d(p, "unet.mid", 2 * u, 2 * u, 3)
        self.u_up = Conv2d(p, "unet.up", 3 * u, u, 3)
        self.u_out = Conv2d(p, "unet.logits", u, d, 1)
        self.h1 = Conv2d(p, "head.conv1", c + u, gh, 3)
        self.h2 = Conv2d(p, "head.out", gh + 3, HEAD_CHANNELS, 1)
        self._fixed: dict = {}

    @property
    def architecture(self) -> str:
        return ARCHITECTURE

    def metadata(self) -> dict:
        """Metadata of a weights file: ``architecture`` and ``encoder_config`` (JSON)."""
        return {"architecture": ARCHITECTURE, "encoder_config": self.config.to_json()}

    # -- stages ----------------------------------------------------------------------------
    def features(self, rec: Recorder, image: GpuTensor, tape: Tape | None) -> GpuTensor:
        """[1, 3, H, W] → [1, C, H/4, W/4]."""
        x = relu(rec, self.f1n(rec, self.f1(rec, image, tape, input_grad=False), tape), tape)
        x = relu(rec, self.f2n(rec, self.f2(rec, x, tape), tape), tape)
        return self.f3(rec, x, tape)

    def _expectation(self, inv_planes: np.ndarray, ctx):
        key = tuple(np.round(inv_planes, 12))
        w = self._fixed.get(key)
        if w is None:
            d = inv_planes.size
            w = self._fixed[key] = (GpuTensor.from_numpy(inv_planes.reshape(1, d, 1, 1).astype(np.float32),
                                                         "plane inverse depths", ctx),
                                    GpuTensor.zeros((1,), np.float32, "zero bias", ctx))
        return w

    def forward(self, rec: Recorder, images, cameras, near: float, far: float, tape: Tape | None = None,
                floor_fraction: float = 0.5) -> EncoderOutput:
        """Record the encoder on two context views.

        Args:
            rec: recorder (the forward is recorded, not submitted).
            images: two float32 GpuTensors [1, 3, H, W] (RGB in [0, 1]).
            cameras: their :class:`~brushpy.render.camera.Camera` (size W x H).
            near, far: the cost volume's depth range (scene units, reference camera z).
            tape: record every op on it (for training); None for inference.
            floor_fraction: splats get inverse depth >= ``floor_fraction / far``.

        Raises:
            FeedForwardInputError: not two views, sizes that differ or are not multiples of 8,
                a camera of another size, a bad depth range.
        """
        check_context(images, cameras)
        cfg = self.config
        inv_planes = plane_inverse_depths(near, far, cfg.num_planes)
        depths = (1.0 / inv_planes).astype(np.float32)
        ctx = images[0].ctx
        exp_w, exp_b = self._expectation(inv_planes, ctx)
        h, w = cameras[0].height, cameras[0].width
        feats = [self.features(rec, im, tape) for im in images]
        small = [cam.scaled(w // 4, h // 4) for cam in cameras]
        inv_full, heads, probs, masks = [], [], [], []
        c = cfg.feature_channels
        for i in range(2):
            j = 1 - i
            src = feats[j].reshape(c, h // 4, w // 4)
            warped, mask = plane_sweep_warp(rec, src, depths, small[i].intrinsics, small[i].world_to_camera,
                                            small[j].intrinsics, small[j].world_to_camera, tape=tape)
            cost = correlation(rec, feats[i].reshape(c, h // 4, w // 4), warped, tape=tape)
            x = concat_channels(rec, [cost.reshape(1, cfg.num_planes, h // 4, w // 4), feats[i]], tape=tape)
            e1 = relu(rec, self.u_in_n(rec, self.u_in(rec, x, tape), tape), tape)
            e2 = relu(rec, self.u_down_n(rec, self.u_down(rec, e1, tape), tape), tape)
            e2 = relu(rec, self.u_mid(rec, e2, tape), tape)
            up = upsample_bilinear(rec, e2, 2, tape=tape)
            dec = relu(rec, self.u_up(rec, concat_channels(rec, [e1, up], tape=tape), tape), tape)
            p = softmax_depth(rec, self.u_out(rec, dec, tape), tape=tape)
            inv_low = conv2d(rec, p, exp_w, exp_b, tape=tape)
            inv_full.append(upsample_bilinear(rec, inv_low, 4, tape=tape))
            hid = relu(rec, self.h1(rec, concat_channels(rec, [feats[i], dec], tape=tape), tape), tape)
            hid = upsample_bilinear(rec, hid, 4, tape=tape)
            heads.append(self.h2(rec, concat_channels(rec, [hid, images[i]], tape=tape), tape))
            probs.append(p)
            masks.append(mask)
        dinv = float(inv_planes[0] - inv_planes[1])
        lift = PixelLiftOp(rec, inv_full, heads, images, cameras, dinv, floor_fraction / far)
        if tape is not None:
            tape.record(lift)
        return EncoderOutput(lift.splats, inv_full, probs, masks, inv_planes, lift)


def check_context(images, cameras) -> None:
    """Raise :class:`FeedForwardInputError` unless two images of one size (multiples of 8) fit their cameras."""
    if len(images) != 2 or len(cameras) != 2:
        raise FeedForwardInputError(f"the encoder takes exactly 2 context views, got {len(images)}")
    shapes = [tuple(im.shape) for im in images]
    if shapes[0] != shapes[1]:
        raise FeedForwardInputError(f"context images of different sizes: {shapes[0]} and {shapes[1]}; "
                                    "resize them to one size (--resolution)")
    b, ch, h, w = shapes[0]
    if b != 1 or ch != 3:
        raise FeedForwardInputError(f"context images must be [1, 3, H, W], got {shapes[0]}")
    if h % 8 or w % 8:
        raise FeedForwardInputError(f"context images are {w}x{h}: width and height must be multiples of 8 "
                                    "(--resolution)")
    for k, cam in enumerate(cameras):
        if (cam.width, cam.height) != (w, h):
            raise FeedForwardInputError(f"context camera {k} is {cam.width}x{cam.height} but its image is {w}x{h}")
