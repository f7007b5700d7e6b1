"""Group normalisation with affine weight and bias (Wu & He 2018), a tape op.

Per sample and group of ``C / G`` channels: ``x̂ = (x - mean) / sqrt(var + eps)`` (biased
variance over the group's channels and pixels), ``y = γ[c]·x̂ + β[c]``; PyTorch's
``nn.GroupNorm(G, C, eps=1e-5)``. ``G = C`` is instance normalisation, ``G = 1`` layer norm over
(C, H, W). Kernels: ``shaders/nn_group_norm.wgsl`` (workgroup tree sums, deterministic).
Reference: :func:`brushpy.nn.reference.group_norm`.
"""

from __future__ import annotations

import numpy as np

from ..autodiff import Op
from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout, workgroups_for
from ._checks import check_grad, check_tensor, record
from .reference import GROUP_NORM_EPS

#: shaders/nn_group_norm.wgsl
NORM_PARAMS = UniformLayout("NormParams", [
    ("count", "u32", "elements B*C*H*W"),
    ("batch", "u32"),
    ("channels", "u32"),
    ("groups", "u32"),
    ("hw", "u32", "H*W"),
    ("group_size", "u32", "(C/G)*H*W"),
    ("groups_total", "u32", "B*G"),
    ("eps", "f32"),
])


def _kernel(entry: str, backward: bool) -> Kernel:
    return Kernel("nn_group_norm.wgsl", entry, {"BACKWARD": backward}, structs=[NORM_PARAMS])


class GroupNormOp(Op):
    """Group norm of ``x`` [B, C, H, W] with ``groups`` groups and affine ``weight``/``bias`` [C].

    inputs: ``{"x", "weight", "bias"}``; outputs: ``{"y"}`` shaped like ``x``. The per-group
    mean and 1/std (``stats`` [B·G, 2]) are kept for the backward.

    Raises:
        ValueError: ``groups`` does not divide C, or weight/bias are not float32 [C].
    """

    name = "group_norm"

    def __init__(self, rec: Recorder, x: GpuTensor, groups: int, weight: GpuTensor, bias: GpuTensor,
                 eps: float = GROUP_NORM_EPS):
        b, c, h, w = check_tensor(x, "group_norm input x", 4, "[B, C, H, W]")
        for what, t in (("weight", weight), ("bias", bias)):
            if tuple(check_tensor(t, f"group_norm {what}", 1, "[C]")) != (c,):
                raise ValueError(f"group_norm {what} must be float32 [{c}], got {t.shape}")
        groups = int(groups)
        if groups < 1 or c % groups:
            raise ValueError(f"group_norm: {groups} groups must divide the {c} channels")
        ctx = x.ctx
        self.params = NORM_PARAMS.pack(count=x.numel, batch=b, channels=c, groups=groups, hw=h * w,
                                       group_size=(c // groups) * h * w, groups_total=b * groups, eps=float(eps))
        self.groups_total, self.channels = b * groups, c
        self.stats = GpuTensor.empty((b * groups, 2), np.float32, "group_norm stats", ctx)
        y = GpuTensor.empty(x.shape, np.float32, "group_norm y", ctx)
        bind = {"params": self.params, "x": x, "gamma": weight, "beta": bias, "stats": self.stats, "y": y}
        with rec.stage("nn_group_norm"):
            rec.dispatch(_kernel("group_stats", False), bind, workgroups_for(self.groups_total, 1, ctx))
            rec.dispatch(_kernel("forward", False), bind, workgroups_for(x.numel, 256, ctx))
        self.inputs = {"x": x, "weight": weight, "bias": bias}
        self.outputs = {"y": y}

    def backward(self, rec: Recorder, grad_outputs: dict) -> dict:
        x = self.inputs["x"]
        g = check_grad(grad_outputs["y"], x, self.name)
        ctx = x.ctx
        gx = GpuTensor.empty(x.shape, np.float32, "group_norm grad x", ctx)
        gsums = GpuTensor.empty((self.groups_total, 2), np.float32, "group_norm grad sums", ctx)
        gw = GpuTensor.empty((self.channels,), np.float32, "group_norm grad weight", ctx)
        gb = GpuTensor.empty((self.channels,), np.float32, "group_norm grad bias", ctx)
        bind = {"params": self.params, "x": x, "gamma": self.inputs["weight"], "stats": self.stats, "gout": g,
                "grad_x": gx, "gsums": gsums, "grad_gamma": gw, "grad_beta": gb}
        with rec.stage("nn_group_norm_backward"):
            rec.dispatch(_kernel("backward_stats", True), bind, workgroups_for(self.groups_total, 1, ctx))
            rec.dispatch(_kernel("backward_input", True), bind, workgroups_for(x.numel, 256, ctx))
            rec.dispatch(_kernel("backward_affine", True), bind, workgroups_for(self.channels, 1, ctx))
        return {"x": gx, "weight": gw, "bias": gb}


def group_norm(rec: Recorder, x: GpuTensor, groups: int, weight: GpuTensor, bias: GpuTensor,
               eps: float = GROUP_NORM_EPS, tape=None) -> GpuTensor:
    """Record a group norm (:class:`GroupNormOp`, on ``tape`` when given) and return its output."""
    return record(GroupNormOp(rec, x, groups, weight, bias, eps), tape)
