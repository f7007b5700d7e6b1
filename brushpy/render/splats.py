"""A splat set: the trainable parameters of 3D Gaussians, as GPU tensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..gpu import GpuTensor


def sh_degree_from_coeffs(num_coeffs: int) -> int:
    """SH degree d from K = (d+1)^2 coefficients per channel (d in 0..4).

    Raises:
        ValueError: when K is not a square of 1..5.
    """
    d = int(round(np.sqrt(num_coeffs))) - 1
    if (d + 1) ** 2 != num_coeffs or not 0 <= d <= 4:
        raise ValueError(f"{num_coeffs} SH coefficients per channel; expected (d+1)^2 with d in 0..4")
    return d


@dataclass
class Splats:
    """Parameters of N Gaussians on the GPU (all float32).

    Attributes:
        means: [N,3] world-space centres.
        rotations: [N,4] quaternions (w, x, y, z), not necessarily normalised.
        log_scales: [N,3] natural log of the standard deviations along the local axes.
        sh_coeffs: [N,K,3] spherical-harmonic colour coefficients, K = (degree+1)^2,
            band 0 first (Sloan's real basis, as gsplat/INRIA).
        raw_opacities: [N] opacity logits (opacity = sigmoid).

    A splat set is a parameter group (:class:`brushpy.autodiff.ParamGroup`):
    :meth:`params` names its tensors with :attr:`PARAM_NAMES`, the one list of
    splat parameter names (the optimizer, refine, checkpoints and gradients use it).
    """

    #: the trainable tensors, in input order (the one owner of these names)
    PARAM_NAMES = ("means", "rotations", "log_scales", "sh_coeffs", "raw_opacities")

    means: GpuTensor
    rotations: GpuTensor
    log_scales: GpuTensor
    sh_coeffs: GpuTensor
    raw_opacities: GpuTensor

    def params(self) -> dict[str, GpuTensor]:
        """``{name: tensor}`` for every name in :attr:`PARAM_NAMES` (the parameter group)."""
        return {k: getattr(self, k) for k in self.PARAM_NAMES}

    @property
    def num_splats(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_coeffs(self.sh_coeffs.shape[1])

    @classmethod
    def from_numpy(cls, means, rotations, log_scales, sh_coeffs, raw_opacities) -> "Splats":
        """Upload numpy arrays (any float dtype; converted to float32).

        Raises:
            ValueError: when shapes disagree (message names the array).
        """
        means = np.asarray(means, np.float32).reshape(-1, 3)
        n = means.shape[0]
        arrays = {
            "rotations": (np.asarray(rotations, np.float32), (n, 4)),
            "log_scales": (np.asarray(log_scales, np.float32), (n, 3)),
            "raw_opacities": (np.asarray(raw_opacities, np.float32).reshape(-1), (n,)),
        }
        for name, (arr, shape) in arrays.items():
            if arr.shape != shape:
                raise ValueError(f"{name} has shape {arr.shape}; expected {shape} for {n} splats")
        sh = np.asarray(sh_coeffs, np.float32)
        if sh.ndim == 2 and sh.shape[1] == 3:
            sh = sh[:, None, :]
        if sh.ndim != 3 or sh.shape[0] != n or sh.shape[2] != 3:
            raise ValueError(f"sh_coeffs has shape {sh.shape}; expected ({n}, K, 3)")
        sh_degree_from_coeffs(sh.shape[1])
        return cls(
            GpuTensor.from_numpy(means, "means"),
            GpuTensor.from_numpy(arrays["rotations"][0], "rotations"),
            GpuTensor.from_numpy(arrays["log_scales"][0], "log_scales"),
            GpuTensor.from_numpy(sh, "sh_coeffs"),
            GpuTensor.from_numpy(arrays["raw_opacities"][0], "raw_opacities"),
        )

    def numpy(self) -> dict[str, np.ndarray]:
        """Copy all parameters to the host (dict of float32 arrays)."""
        return {k: getattr(self, k).numpy() for k in self.PARAM_NAMES}
