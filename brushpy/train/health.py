"""Training health: catch a diverged run before it writes non-finite splats.

The loss alone does not show divergence: the renderer culls splats whose
parameters are NaN or ±inf, so a run whose every splat blew up still has a
finite loss (measured: ``--lr-mean 1e38 --lr-scale 1e38`` reported 9.64 dB and
exported 10,000 non-finite splats). :class:`HealthCheck` counts, on the GPU in
one small pass (``shaders/health_count.wgsl``), the splats with a non-finite
value in each parameter tensor. The trainer records it with the loss read-back
(at most every :data:`HEALTH_EVERY` steps) and before every export or checkpoint, and stops with
:class:`NonFiniteSplatsError` naming the step, the tensors and the learning-rate
options to lower; the last export and checkpoint written stay as they were.

Finite splats can be lost too: ``--lr-mean 1e9`` moves every centre about 1e9
scene extents in the first step, out of every camera (measured: exit 0 and
"9.64 dB", the background alone). With no splat visible no gradient reaches
them again, so a run that renders no splat for :func:`blind_steps_limit` steps
in a row stops with :class:`NothingVisibleError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout, workgroups_for
from ..render.splats import Splats
from .errors import TrainingError

#: Steps between two checks while training (with the loss read-back). The pass reads every
#: parameter once, about what Adam reads: on lavapipe, 10k splats at SH degree 3 took about as
#: long as Adam (~30 ms, ~12% of a lego_small step), so checking every step would slow training
#: by that much; every 25 steps it costs ~0.5%, and a divergence is caught within 25 steps.
#: Exports and checkpoints are always checked.
HEALTH_EVERY = 25

#: A run stops as diverged when more than this fraction of its splats is non-finite. Below it
#: the non-finite splats are inert (the renderer culls them, they get no gradient and do not
#: touch the others) and exports leave them out, with a warning: a real 7-Scenes run with the
#: depth loss had 152 of 27,832 splats (0.55%) go non-finite at step 650 and went on improving.
DIVERGED_FRACTION = 0.05

#: shaders/health_count.wgsl
HEALTH_PARAMS = UniformLayout("Params", [
    ("num_splats", "u32"),
    ("sh_row_len", "u32", "SH floats per splat, K·3"),
])

#: The option that sets each parameter tensor's learning rate (docs/options.md).
LR_OPTION = {
    "means": "--lr-mean",
    "log_scales": "--lr-scale",
    "rotations": "--lr-rotation",
    "sh_coeffs": "--lr-coeffs-dc",
    "raw_opacities": "--lr-opac",
}


class DivergedError(TrainingError):
    """Training diverged (the message names the step and the options to lower)."""


class NonFiniteSplatsError(DivergedError):
    """Training diverged: some splats hold NaN or ±inf (the message names the step, tensors and options)."""


class NothingVisibleError(DivergedError):
    """No splat was visible in any view for a whole window of steps: no gradient reaches the
    splats any more, so the run cannot recover (typically the means were flung out of every
    camera's view by a too-high ``--lr-mean``)."""


def blind_steps_limit(num_train_views: int) -> int:
    """How many steps in a row may render no splat before :class:`NothingVisibleError`:
    an epoch's worth of views (at least 10), so one view that sees nothing never trips it."""
    return max(10, int(num_train_views))


def nothing_visible_message(step: int, blind_steps: int, num_splats: int, largest_mean: float) -> str:
    """The error text of :class:`NothingVisibleError`."""
    return (f"training diverged at step {step}: no splat was visible in the last {blind_steps} training views, so "
            f"no gradient reaches the {num_splats:,} splats and the run cannot recover (the farthest splat centre "
            f"is {largest_mean:.3g} from the origin; a too-high learning rate flings splats out of the cameras' "
            "views, and refine then prunes them); stopping without writing them (the last export and checkpoint "
            "are kept). Lower the learning rate (--lr-mean) and train again.")


@dataclass(frozen=True)
class HealthReport:
    """What one :class:`HealthCheck` found.

    Attributes:
        num_splats: splats checked.
        non_finite: ``{tensor name: splats with a non-finite value in it}`` for every
            tensor in ``Splats.PARAM_NAMES`` order.
        bad_splats: splats with a non-finite value in any tensor.
    """

    num_splats: int
    non_finite: dict
    bad_splats: int

    @property
    def ok(self) -> bool:
        """No splat holds a non-finite value."""
        return self.bad_splats == 0

    @property
    def diverged(self) -> bool:
        """More than :data:`DIVERGED_FRACTION` of the splats are non-finite: the run diverged."""
        return self.bad_splats > DIVERGED_FRACTION * self.num_splats

    def warning(self, step: int) -> str:
        """The warning for a few non-finite splats (not a divergence)."""
        bad = ", ".join(f"{name} {n:,}" for name, n in self.non_finite.items() if n)
        return (f"step {step}: {self.bad_splats:,} of {self.num_splats:,} splats have non-finite parameters "
                f"({bad}); the renderer skips them and exports leave them out (training stops as diverged "
                f"above {DIVERGED_FRACTION:.0%})")

    def message(self, step: int) -> str:
        """The error text for a run stopped at ``step`` (names the tensors and their options)."""
        bad = [name for name, n in self.non_finite.items() if n]
        detail = ", ".join(f"{name} {self.non_finite[name]:,}" for name in bad)
        options = ", ".join(dict.fromkeys(LR_OPTION[name] for name in bad))
        return (f"training diverged at step {step}: {self.bad_splats:,} of {self.num_splats:,} splats have "
                f"non-finite parameters ({detail}); stopping without writing them (the last export and "
                f"checkpoint are kept). Lower the learning rate ({options}) and train again.")


def _bad_rows(data) -> dict:
    """``{name: bool [N]}``: the splats of ``data`` (``{name: array}`` or a ``SplatData``) with a
    non-finite value in each tensor of ``Splats.PARAM_NAMES``."""
    get = data.get if isinstance(data, dict) else lambda name: getattr(data, name)
    out = {}
    for name in Splats.PARAM_NAMES:
        a = np.asarray(get(name))
        out[name] = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
    return out


def count_non_finite(arrays: dict) -> HealthReport:
    """The host-side count of :class:`HealthCheck` (and its reference in the tests).

    Args:
        arrays: ``{name: array [N, ...]}`` for every name in ``Splats.PARAM_NAMES``
            (NumPy arrays, or anything with those attributes, e.g. a ``SplatData``).
    """
    rows = _bad_rows(arrays)
    n = len(rows["means"])
    return HealthReport(n, {name: int(r.sum()) for name, r in rows.items()},
                        int(np.logical_or.reduce(list(rows.values())).sum()) if n else 0)


class HealthCheck:
    """Counts splats with non-finite parameters on the GPU (one pass, six ``u32`` read back).

    Usage: :meth:`record` into a step's recorder, submit, then :meth:`read`
    (waits for the GPU); or :meth:`check` to do all three and raise.
    """

    def __init__(self):
        self._kernel = Kernel("health_count.wgsl", structs=[HEALTH_PARAMS])
        self._counts = GpuTensor.empty((len(Splats.PARAM_NAMES) + 1,), np.uint32, "health counts")
        self._num_splats = 0

    def record(self, rec: Recorder, splats: Splats) -> None:
        """Record the count of ``splats``' non-finite values into ``rec`` (read after it is submitted)."""
        n = splats.num_splats
        self._num_splats = n
        rec.clear(self._counts)
        if n == 0:
            return
        params = HEALTH_PARAMS.pack(num_splats=n, sh_row_len=int(np.prod(splats.sh_coeffs.shape[1:])))
        bindings = {"params": params, **splats.params(), "counts": self._counts}
        with rec.stage("health"):
            rec.dispatch(self._kernel, bindings, workgroups_for(n, 256))

    def read(self) -> HealthReport:
        """The counts of the last :meth:`record` (after its recorder was submitted; waits for the GPU)."""
        counts = self._counts.numpy()
        return HealthReport(self._num_splats, dict(zip(Splats.PARAM_NAMES, map(int, counts[:-1]))), int(counts[-1]))

    def check(self, splats: Splats, step: int) -> HealthReport:
        """Count now; raises :class:`NonFiniteSplatsError` when the run diverged (:attr:`HealthReport.diverged`)."""
        rec = Recorder()
        self.record(rec, splats)
        rec.submit()
        report = self.read()
        if report.diverged:
            raise NonFiniteSplatsError(report.message(step))
        return report


def finite_rows(data) -> np.ndarray:
    """bool [N]: the splats of ``data`` (a ``SplatData`` or ``{name: array}``) whose every value is finite."""
    return ~np.logical_or.reduce(list(_bad_rows(data).values()))
