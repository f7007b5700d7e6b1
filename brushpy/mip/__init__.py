"""MIP mode: emissive anisotropic 3D Gaussians fitted to maximum intensity projections of a volume.

- :mod:`.camera`: orthographic/perspective orbit views and the coordinate convention.
- :mod:`.volume`: TIFF/.npy volumes and their true MIPs.
- :mod:`.model`: parameters, initialisation, checkpoints, PLY export.
- :mod:`.render`: the differentiable soft-MIP renderer (WGSL forward/backward).
- :mod:`.train`: the loss (and its tape op), the tape-driven step, gradient clipping, Adam, clamps; evaluation.
- :mod:`.cli`: the ``brushpy mip`` click group (:data:`mip_group`).
"""

from .camera import MipCamera, box_extents, orbit_cameras
from .model import MipGaussians, export_ply, init_from_volume, init_random
from .render import MipFrame, MipOverflowError, MipRenderOp, MipRenderer
from .train import MipLoss, MipLossOp, MipTrainConfig, MipTrainer, evaluate
from .volume import VolumeError, load_projection_image, load_volume, true_mip, true_mips

__all__ = [
    "MipCamera",
    "MipFrame",
    "MipGaussians",
    "MipLoss",
    "MipLossOp",
    "MipOverflowError",
    "MipRenderOp",
    "MipRenderer",
    "MipTrainConfig",
    "MipTrainer",
    "VolumeError",
    "box_extents",
    "evaluate",
    "export_ply",
    "init_from_volume",
    "init_random",
    "load_projection_image",
    "load_volume",
    "orbit_cameras",
    "true_mip",
    "true_mips",
]
