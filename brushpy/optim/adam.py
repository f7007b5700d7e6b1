"""GPU-resident Adam for splat parameters, with Brush's per-group learning rates.

Update rule (Kingma & Ba 2015, as in Brush's ``AdamScaled``/burn's Adam), per
element, with ``t`` the number of steps taken so far including this one::

    m <- β1·m + (1-β1)·g
    v <- β2·v + (1-β2)·g²
    p <- p - lr · (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + ε)

β1 = 0.9, β2 = 0.999, ε = 1e-15 by default. ``t`` is one counter for the whole
optimizer (splats created by refine start from zeroed moments but share it,
as in Brush).

Parameter groups (tensor name -> learning rate), names as in
:attr:`brushpy.render.splats.Splats.PARAM_NAMES` (the keys of
:meth:`Adam.learning_rates`, less ``sh_coeffs_rest``):

=================  ===============================================================
``means``          :func:`mean_lr` (exponential decay ``lr_mean`` → ``lr_mean_end``,
                   times the scene extent)
``rotations``      ``lr_rotation``
``log_scales``     ``lr_scale``
``sh_coeffs``      [N, K, 3]: band 0 (k = 0) ``lr_coeffs_dc``; k ≥ 1
                   ``lr_coeffs_dc / lr_coeffs_sh_scale``
``raw_opacities``  ``lr_opac``
=================  ===============================================================

With ``shared_sh_second_moment`` the SH coefficients of a splat share one
second moment ``v`` [N], updated with the mean of g² over the splat's K·3
coefficients.

Other parameter groups (a network's weights, :class:`brushpy.nn.NetParams`): pass ``lr`` (a
float, or a function of the step returning one) and every tensor of the group, whatever its
name, is updated with that one rate; the splat-specific rules (mean schedule, SH bands) are then
off.

State is kept per tensor name: ``exp_avg`` (m, same shape as the parameter) and
``exp_avg_sq`` (v, same shape, or [N] when shared). Refine reshapes it with
:meth:`Adam.gather` and clears new splats with :meth:`Adam.zero_mask`
(both :mod:`brushpy.gpu.rows`, the kernels refine gathers the splats with);
checkpoints use :meth:`Adam.state_dict` /
:meth:`Adam.load_state_dict` (bit-exact).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..gpu import GpuTensor, Kernel, Recorder, Uniform, UniformLayout, workgroups_for
from ..gpu.rows import gather_rows, zero_rows

#: shaders/adam.wgsl (both entry points)
ADAM_PARAMS = UniformLayout("AdamParams", [
    ("count", "u32", "elements (main) or rows (main_shared)"),
    ("row_len", "u32"),
    ("first_cols", "u32"),
    ("_pad0", "u32"),
    ("lr_first", "f32"),
    ("lr_rest", "f32"),
    ("beta1", "f32"),
    ("beta2", "f32"),
    ("inv_bc1", "f32", "1 / (1 - b1^t)"),
    ("inv_bc2", "f32", "1 / (1 - b2^t)"),
    ("eps", "f32"),
    ("_pad1", "f32"),
    ("one_minus_beta1", "f32", "1 - b1, computed in float64 on the host (f32(1 - f32(b2)) is off by 1e-5)"),
    ("one_minus_beta2", "f32"),
    ("_pad2", "f32"),
    ("_pad3", "f32"),
])


def _adam_params(count: int, row_len: int, first_cols: int, lr_first: float, lr_rest: float, c: "AdamConfig",
                 inv_bc1: float, inv_bc2: float) -> Uniform:
    """:data:`ADAM_PARAMS` bytes for one dispatch, its scalars in declaration order (the
    per-dispatch fast path; ``tests/test_adam.py`` checks it against packing by name)."""
    return Uniform(ADAM_PARAMS.pack_scalars(
        count, row_len, first_cols, 0,
        lr_first, lr_rest, c.beta1, c.beta2,
        inv_bc1, inv_bc2, c.eps, 0.0,
        1.0 - c.beta1, 1.0 - c.beta2, 0.0, 0.0))


def exponential_schedule(step: int, total_steps: int, start: float, end: float) -> float:
    """``start · (end / start)^(step / total_steps)``, ``step`` clamped to ``[0, total_steps]``.

    The exponential decay (or growth) of Brush's and INRIA 3DGS's schedulers: ``start`` at
    step 0, the geometric mean at ``total_steps/2``, ``end`` at ``total_steps``. Used by
    :func:`mean_lr` and the depth-loss weight
    (:meth:`brushpy.train.config.TrainConfig.depth_loss_weight_at`).

    Raises:
        ValueError: ``total_steps`` < 1 or a non-positive ``start`` / ``end``.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps (--total-steps) must be >= 1, got {total_steps}")
    if not (start > 0 and end > 0):
        raise ValueError(f"an exponential schedule needs start and end > 0, got {start} and {end}")
    frac = min(max(int(step), 0), int(total_steps)) / float(total_steps)
    return float(start) * (float(end) / float(start)) ** frac


def mean_lr(step: int, total_steps: int, lr_start: float, lr_end: float, extent: float) -> float:
    """Learning rate of the means at training step ``step`` (0-based).

    ``extent · lr_start · (lr_end / lr_start)^(step / total_steps)``, with ``step``
    clamped to ``[0, total_steps]`` (:func:`exponential_schedule`): ``lr_start·extent`` at
    step 0, the geometric mean at ``total_steps/2`` and ``lr_end·extent`` at ``total_steps``
    (the same per-step factor ``(lr_end/lr_start)^(1/total_steps)`` as Brush's exponential
    scheduler).

    Raises:
        ValueError: ``total_steps`` < 1 or non-positive learning rates.
    """
    if lr_start <= 0 or lr_end <= 0:
        raise ValueError(f"--lr-mean and --lr-mean-end must be > 0, got {lr_start} and {lr_end}")
    return float(extent) * exponential_schedule(step, total_steps, lr_start, lr_end)


@dataclass
class AdamConfig:
    """Optimizer options, with Brush's names.

    These defaults are the only copy of the training defaults of the options it shares with
    :class:`brushpy.train.config.TrainConfig` (``lr_*``, ``total_steps``): ``TrainConfig`` takes
    its defaults from here. Four learning rates differ from Brush's (``docs/options.md`` lists
    Brush's): measured on the 100x100 lego subset (300 steps, focus-box init, same seed),
    Brush's 2e-5 / 2e-3 / 0.012 / 5e-3 (means / SH band 0 / opacity / scales) reached 19.2 dB
    eval PSNR; 2e-4 / 5e-3 / 0.05 / 1e-2 reached 22.9 dB (opacity + colour alone: 21.8 dB).
    Brush trains 30k steps from SfM points; at 7k steps from a random init its rates leave
    opacities and colours far from converged (an opacity logit moves ~0.012 per step: ~500
    steps from 0.1 to 0.99). These are INRIA 3DGS's order of magnitude (opacity 0.05, means
    1.6e-4 x a ~2x larger extent, scales 5e-3, colour 2.5e-3).
    """

    lr_mean: float = 2e-4
    lr_mean_end: float = 2e-6
    lr_coeffs_dc: float = 5e-3
    lr_coeffs_sh_scale: float = 10.0
    lr_opac: float = 0.05
    lr_scale: float = 1e-2
    lr_rotation: float = 2e-3
    total_steps: int = 30000
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-15
    shared_sh_second_moment: bool = False

    @classmethod
    def from_options(cls, options, **overrides) -> "AdamConfig":
        """Build from any object with the training option names (e.g. ``brushpy.train`` 's
        ``TrainConfig``): ``lr_mean``, ``lr_mean_end``, ``lr_coeffs_dc``, ``lr_coeffs_sh_scale``,
        ``lr_opac``, ``lr_scale``, ``lr_rotation``, ``total_steps``; missing names keep the defaults."""
        names = ("lr_mean", "lr_mean_end", "lr_coeffs_dc", "lr_coeffs_sh_scale", "lr_opac", "lr_scale",
                 "lr_rotation", "total_steps", "beta1", "beta2", "eps", "shared_sh_second_moment")
        kw = {n: getattr(options, n) for n in names if hasattr(options, n)}
        kw.update(overrides)
        return cls(**kw)

    def __post_init__(self):
        if self.lr_coeffs_sh_scale <= 0:
            raise ValueError(f"--lr-coeffs-sh-scale must be > 0, got {self.lr_coeffs_sh_scale}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"Adam betas must be in [0, 1), got {self.beta1}, {self.beta2}")


def _rows(t: GpuTensor) -> tuple[int, int]:
    n = t.shape[0] if t.shape else 1
    return n, (t.numel // n if n else int(np.prod(t.shape[1:], dtype=np.int64)))


class Adam:
    """Adam over named splat tensors; owns the moment buffers.

    Args:
        config: learning rates, betas, epsilon, SH options.
        scene_extent: multiplies the mean LR; update :attr:`scene_extent` when it
            is recomputed (after refine).
        lr: for parameter groups other than splats: one learning rate (float, or
            ``lr(step) -> float`` for a schedule) for every tensor, any name; the
            per-group splat rates of ``config`` are then unused (betas and eps still apply).

    Attributes:
        t: steps taken (bias-correction exponent of the last step).
        state: ``{name: {"exp_avg": GpuTensor, "exp_avg_sq": GpuTensor}}``.
    """

    def __init__(self, config: AdamConfig | None = None, scene_extent: float = 1.0, lr=None):
        self.config = config or AdamConfig()
        self.lr = lr
        self.scene_extent = float(scene_extent)
        self.t = 0
        self.state: dict[str, dict[str, GpuTensor]] = {}
        self._k_elem = Kernel("adam.wgsl", "main", structs=[ADAM_PARAMS])
        self._k_shared = Kernel("adam.wgsl", "main_shared", structs=[ADAM_PARAMS])

    # -- learning rates -------------------------------------------------------
    def learning_rates(self, step: int) -> dict[str, float]:
        """Learning rate of each group at training step ``step`` (``sh_coeffs_rest`` = bands ≥ 1)."""
        c = self.config
        return {
            "means": mean_lr(step, c.total_steps, c.lr_mean, c.lr_mean_end, self.scene_extent),
            "rotations": c.lr_rotation,
            "log_scales": c.lr_scale,
            "sh_coeffs": c.lr_coeffs_dc,
            "sh_coeffs_rest": c.lr_coeffs_dc / c.lr_coeffs_sh_scale,
            "raw_opacities": c.lr_opac,
        }

    def groups(self) -> tuple[str, ...]:
        """The parameter names this optimizer has a learning rate for (empty with a single ``lr``: any name)."""
        if self.lr is not None:
            return ()
        return tuple(k for k in self.learning_rates(0) if k != "sh_coeffs_rest")

    def _lr_for(self, step: int) -> float:
        return float(self.lr(step) if callable(self.lr) else self.lr)

    def _shared(self, name: str) -> bool:
        return self.lr is None and name == "sh_coeffs" and self.config.shared_sh_second_moment

    def _ensure_state(self, name: str, p: GpuTensor) -> dict[str, GpuTensor]:
        n, _ = _rows(p)
        st = self.state.get(name)
        if st is None:
            v_shape = (n,) if self._shared(name) else p.shape
            st = {
                "exp_avg": GpuTensor.empty(p.shape, np.float32, f"adam {name} exp_avg"),
                "exp_avg_sq": GpuTensor.empty(v_shape, np.float32, f"adam {name} exp_avg_sq"),
            }
            self.state[name] = st
        elif tuple(st["exp_avg"].shape) != tuple(p.shape):
            raise ValueError(
                f"Adam state for {name!r} has shape {st['exp_avg'].shape} but the parameter is {p.shape}; "
                "call Adam.gather() after refine changes the splat count"
            )
        return st

    # -- the update -----------------------------------------------------------
    def step(self, rec: Recorder, params, grads, step: int) -> dict[str, float]:
        """Record one Adam update of every tensor in ``params`` (in place); returns the LRs used.

        Args:
            rec: recorder (stage "adam").
            params: a parameter group (:class:`brushpy.autodiff.ParamGroup`, e.g.
                :class:`~brushpy.render.splats.Splats`: ``params()`` gives
                ``{name: tensor}``) or such a dict; float32 GpuTensors [N, ...], names
                from :meth:`groups`.
            grads: the tape's :class:`brushpy.autodiff.Gradients` (looked up by the
                group's tensors) or ``{name: gradient}`` with the same names and shapes;
                tensors without a gradient are not updated.
            step: 0-based training step (drives the mean LR schedule).

        Raises:
            ValueError: unknown names, shape or dtype mismatches.
        """
        if hasattr(params, "params"):
            params = params.params()
        if hasattr(grads, "of"):
            grads = grads.of(params)
        if self.lr is None:
            groups = self.groups()
            unknown = sorted(set(params) - set(groups))
            if unknown:
                raise ValueError(f"Adam: unknown parameter group(s) {unknown}; expected names from {groups}")
            lrs = self.learning_rates(step)
        else:
            groups = tuple(params)
            lr = self._lr_for(step)
            lrs = {name: lr for name in groups}
        c = self.config
        self.t += 1
        inv_bc1 = 1.0 / (1.0 - c.beta1**self.t)
        inv_bc2 = 1.0 / (1.0 - c.beta2**self.t)
        with rec.stage("adam"):
            for name in groups:
                if name not in params or name not in grads:
                    continue
                p, g = params[name], grads[name]
                if p.dtype != np.float32 or g.dtype != np.float32 or tuple(p.shape) != tuple(g.shape):
                    raise ValueError(
                        f"Adam: {name} parameter {p.dtype.name}{p.shape} and gradient {g.dtype.name}{g.shape} "
                        "must be float32 with equal shapes"
                    )
                if p.numel == 0:
                    continue
                st = self._ensure_state(name, p)
                n, row = _rows(p)
                lr_first = lr_rest = lrs[name]
                first = row
                if name == "sh_coeffs" and self.lr is None:
                    if len(p.shape) != 3 or p.shape[2] != 3:
                        raise ValueError(f"Adam: sh_coeffs must be [N, K, 3], got {p.shape}")
                    first, lr_rest = 3, lrs["sh_coeffs_rest"]
                shared = self._shared(name)
                count = n if shared else p.numel
                rec.dispatch(self._k_shared if shared else self._k_elem,
                             {"params": _adam_params(count, row, first, lr_first, lr_rest, c, inv_bc1, inv_bc2),
                              "param": p, "grad": g, "exp_avg": st["exp_avg"], "exp_avg_sq": st["exp_avg_sq"]},
                             workgroups_for(count, 256))
        return lrs

    # -- refine support -------------------------------------------------------
    def gather(self, rec: Recorder, idx: GpuTensor) -> None:
        """Replace every state tensor by its rows ``idx`` (u32 [M]): new row i = old row idx[i].

        An index ≥ the old row count gives a zero row (a fresh splat).
        (:func:`brushpy.gpu.rows.gather_rows`, bit-exact.)
        """
        if idx.dtype != np.uint32 or len(idx.shape) != 1:
            raise ValueError(f"Adam.gather: idx must be uint32 [M], got {idx.dtype.name} {idx.shape}")
        m = idx.shape[0]
        with rec.stage("adam_state"):
            for st in self.state.values():
                for key, src in list(st.items()):
                    st[key] = gather_rows(rec, src, idx, m)

    def zero_mask(self, rec: Recorder, mask: GpuTensor) -> None:
        """Zero the moments of splats whose ``mask`` entry (u32 [N]) is non-zero
        (:func:`brushpy.gpu.rows.zero_rows`)."""
        if mask.dtype != np.uint32 or len(mask.shape) != 1:
            raise ValueError(f"Adam.zero_mask: mask must be uint32 [N], got {mask.dtype.name} {mask.shape}")
        with rec.stage("adam_state"):
            for name, st in self.state.items():
                for dst in st.values():
                    n, _ = _rows(dst)
                    if n != mask.shape[0]:
                        raise ValueError(f"Adam.zero_mask: mask has {mask.shape[0]} rows, state {name!r} has {n}")
                    if dst.numel:
                        zero_rows(rec, dst, mask)

    def reset(self) -> None:
        """Drop all moments and the step counter."""
        self.state.clear()
        self.t = 0

    # -- checkpoints ------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the state: ``{"t": int64[()], "<name>.exp_avg": ..., "<name>.exp_avg_sq": ...}``."""
        out = {"t": np.array(self.t, np.int64)}
        for name, st in self.state.items():
            for key, tensor in st.items():
                out[f"{name}.{key}"] = tensor.numpy()
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned (bit-exact); replaces all current state.

        Raises:
            ValueError: missing ``t``, unknown names or keys, a mismatch between shared and unshared SH layouts.
        """
        if "t" not in state:
            raise ValueError("Adam.load_state_dict: the checkpoint has no 't' (step counter)")
        new: dict[str, dict[str, GpuTensor]] = {}
        for key, arr in state.items():
            if key == "t":
                continue
            name, _, which = key.rpartition(".")
            if (self.lr is None and name not in self.groups()) or which not in ("exp_avg", "exp_avg_sq"):
                raise ValueError(f"Adam.load_state_dict: unexpected key {key!r}")
            arr = np.asarray(arr, np.float32)
            new.setdefault(name, {})[which] = GpuTensor.from_numpy(arr, label=f"adam {name} {which}")
        for name, st in new.items():
            if set(st) != {"exp_avg", "exp_avg_sq"}:
                raise ValueError(f"Adam.load_state_dict: {name!r} needs both exp_avg and exp_avg_sq")
            shared_shape = (st["exp_avg"].shape[0],)
            want = shared_shape if self._shared(name) else st["exp_avg"].shape
            if tuple(st["exp_avg_sq"].shape) != tuple(want):
                raise ValueError(
                    f"Adam.load_state_dict: {name}.exp_avg_sq has shape {st['exp_avg_sq'].shape}, expected {want} "
                    f"(shared_sh_second_moment={self.config.shared_sh_second_moment})"
                )
        self.state = new
        self.t = int(state["t"])
