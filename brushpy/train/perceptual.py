"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric") for ``--eval-lpips``, from the ``lpips`` package, only when it can run on this machine.

LPIPS needs three things that brushpy does not ship and never downloads:

1. **torch and torchvision** (large: they are not in brushpy's CI install);
2. **the** ``lpips`` **package**: its small linear calibration layers ship inside its wheel;
3. **the backbone's ImageNet weights**, torchvision's ``alexnet-owt-7be5be79.pth`` (233 MB) or
   ``vgg16-397923af.pth`` (528 MB). torchvision would fetch them from its model hub the first time;
   brushpy does not (this machine may have no network): it reads them from torch's hub cache,
   ``$TORCH_HOME/hub/checkpoints/`` (``~/.cache/torch/hub/checkpoints/`` by default), or from the
   file ``--lpips-weights`` names.

:func:`lpips_status` says which piece is missing and how to get it, and
:class:`LpipsMetric` raises :class:`~brushpy.errors.OptionError` with that text before training
starts. The backbone is built with random weights and then loaded from the local file, so no
code path can reach the network.

Convention: images are float [H,W,3] RGB in [0, 1]; LPIPS is 0 for identical images and grows
with perceptual distance (about 0.1 to 0.3 for splatting results at 30k steps with AlexNet).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from ..errors import OptionError

#: ``--lpips-net`` -> torchvision's file name for its ImageNet weights (the names torch's hub cache uses).
BACKBONE_WEIGHTS = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}

INSTALL_HINT = ("pip install 'brushpy[lpips]' (lpips, torch, torchvision; on a machine without a CUDA GPU, "
                "install PyTorch's CPU-only build of torch and torchvision first, as PyTorch's install guide "
                "says: it is far smaller)")


def torch_hub_checkpoints() -> Path:
    """torch's hub cache folder for model weights: ``$TORCH_HOME/hub/checkpoints`` (default
    ``$XDG_CACHE_HOME/torch`` or ``~/.cache/torch``), computed without importing torch."""
    home = os.environ.get("TORCH_HOME")
    if not home:
        home = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(home) / "hub" / "checkpoints"


def backbone_weights_path(net: str = "alex", weights: str | os.PathLike | None = None) -> Path:
    """The file the ``net`` backbone's weights are read from: ``weights`` if given, else torch's hub cache."""
    if net not in BACKBONE_WEIGHTS:
        raise OptionError(f"--lpips-net: {net!r} is not one of {', '.join(BACKBONE_WEIGHTS)}")
    return Path(weights).expanduser() if weights else torch_hub_checkpoints() / BACKBONE_WEIGHTS[net]


def lpips_status(net: str = "alex", weights: str | os.PathLike | None = None) -> str | None:
    """None when LPIPS with the ``net`` backbone can run here; else what is missing and how to get it."""
    missing = []
    for module in ("torch", "torchvision", "lpips"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        return f"--eval-lpips needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed: {INSTALL_HINT}"
    path = backbone_weights_path(net, weights)
    if not path.is_file():
        where = "--lpips-weights" if weights else "torch's hub cache"
        return (f"--eval-lpips: the {net} backbone's ImageNet weights are not at {path} ({where}). brushpy never "
                f"downloads them: on a machine with network, `python -c \"import torchvision; torchvision.models."
                f"{'alexnet' if net == 'alex' else 'vgg16'}(weights='DEFAULT')\"` puts {BACKBONE_WEIGHTS[net]} in "
                f"{torch_hub_checkpoints()}; copy that file here (same folder, or $TORCH_HOME/hub/checkpoints/) or "
                f"pass --lpips-weights FILE")
    return None


class LpipsMetric:
    """LPIPS between a render and its ground truth, on torch's CPU (or the first CUDA device).

    Args:
        net: ``alex`` or ``vgg`` (``--lpips-net``).
        weights: the backbone's torchvision weights file (``--lpips-weights``; default: torch's hub cache).

    Calling it raises ``ValueError`` for images it cannot score; :meth:`score_or_none` (what an
    evaluation during training uses) warns once and returns None instead, so LPIPS never stops a run.

    Raises:
        OptionError: torch, torchvision, lpips or the weights are missing (the message says how to get them),
            or the weights file does not fit the backbone.
    """

    def __init__(self, net: str = "alex", weights: str | os.PathLike | None = None):
        problem = lpips_status(net, weights)
        if problem:
            raise OptionError(problem)
        import lpips
        import torch

        self.net_name = net
        self.path = backbone_weights_path(net, weights)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        # pnet_rand: the backbone starts random (torchvision would download otherwise) and is
        # loaded from the local file below; pretrained: the linear layers the lpips wheel ships
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        _load_backbone(model.net, self.path, torch)
        self.model = model.eval().to(self.device)
        self._torch = torch

    def score_or_none(self, render: np.ndarray, gt: np.ndarray) -> float | None:
        """:meth:`__call__`, or None (with one warning per run) when it fails."""
        try:
            return self(render, gt)
        except Exception as exc:  # noqa: BLE001 - a metric must not stop training
            if not getattr(self, "_warned", False):
                self._warned = True
                logging.getLogger(__name__).warning("LPIPS left out of this evaluation: %s", exc)
            return None

    def __call__(self, render: np.ndarray, gt: np.ndarray) -> float:
        """LPIPS of ``render`` against ``gt`` (float [H,W,3] in [0, 1]); images under 32 px a side are
        too small for the backbone and raise ``ValueError``."""
        if render.shape != gt.shape or render.ndim != 3 or render.shape[2] != 3:
            raise ValueError(f"LPIPS takes two [H,W,3] images of one size, not {render.shape} and {gt.shape}")
        if min(render.shape[:2]) < 32:
            raise ValueError(f"LPIPS needs images of at least 32x32 pixels, not {render.shape[1]}x{render.shape[0]}")
        torch = self._torch

        def tensor(a):  # [H,W,3] in [0,1] -> [1,3,H,W] in [-1,1], lpips' convention
            return torch.from_numpy(np.ascontiguousarray(a, np.float32)).permute(2, 0, 1)[None].to(self.device) * 2 - 1

        with torch.no_grad():
            return float(self.model(tensor(render), tensor(gt)).reshape(-1)[0])


def _load_backbone(backbone, path: Path, torch) -> None:
    """Load torchvision ImageNet weights (``features.<i>.<param>`` keys) into lpips' backbone, whose
    layers are the same modules regrouped as ``slice<k>.<i>``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    where = {}
    for name, _ in backbone.named_modules():
        m = re.fullmatch(r"(slice\d+)\.(\d+)", name)
        if m:
            where[m.group(2)] = name
    mapped = {}
    for key, value in state.items():
        m = re.fullmatch(r"features\.(\d+)\.(\w+)", key)
        if m and m.group(1) in where:
            mapped[f"{where[m.group(1)]}.{m.group(2)}"] = value
    wanted = set(backbone.state_dict())
    if set(mapped) != wanted:
        raise OptionError(f"--lpips-weights {path}: not torchvision's ImageNet weights for this backbone "
                          f"({len(wanted - set(mapped))} of its {len(wanted)} tensors missing); give "
                          f"{', '.join(BACKBONE_WEIGHTS.values())} for --lpips-net alex, vgg")
    backbone.load_state_dict(mapped, strict=True)
