"""A network's trainable weights: a named set of GPU tensors (a :class:`brushpy.autodiff.ParamGroup`).

:class:`NetParams` holds ``{name: float32 GpuTensor}`` in creation order (names such as
``"conv1.weight"``, PyTorch's ``module.weight`` style). Layers (:mod:`brushpy.nn.layers`)
create their tensors in it with seeded He (Kaiming) initialisation; the GPU Adam steps it
(``Adam(config, lr=...)``, :class:`brushpy.optim.Adam`); :meth:`state_dict` /
:meth:`load_state_dict` move it to and from NumPy (``brushpy.io.weights`` writes it as
safetensors).

He initialisation (He et al. 2015, "Delving Deep into Rectifiers", eq. 10): weights drawn from
``N(0, 2 / fan_in)`` with ``fan_in = C_in · K · K`` for a conv (PyTorch's
``kaiming_normal_(mode="fan_in", nonlinearity="relu")``); biases zero. Draws come from
``numpy.random.default_rng(seed)`` in creation order, so one seed and one architecture give the
same weights on every machine.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..gpu import GpuTensor


class WeightsError(InputError):
    """Weights that do not fit the network (names, shapes or dtype); the message names the source file."""


class NetParams:
    """Named float32 GPU tensors of one network, created in a fixed order.

    Args:
        seed: seed of the initialisation draws (``numpy.random.default_rng(seed)``).
        ctx: GPU context (default: the process-wide one).
    """

    def __init__(self, seed: int = 0, ctx=None):
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.ctx = ctx
        self._tensors: dict[str, GpuTensor] = {}

    # -- creation ----------------------------------------------------------------
    def add(self, name: str, array) -> GpuTensor:
        """Upload ``array`` (converted to float32) as parameter ``name`` and return it.

        Raises:
            ValueError: ``name`` already exists.
        """
        if name in self._tensors:
            raise ValueError(f"NetParams: parameter {name!r} already exists")
        t = GpuTensor.from_numpy(np.asarray(array, np.float32), name, self.ctx)
        self._tensors[name] = t
        return t

    def he_normal(self, name: str, shape: tuple, fan_in: int) -> GpuTensor:
        """A weight drawn from ``N(0, 2 / fan_in)`` (He et al. 2015) from this group's generator."""
        std = math.sqrt(2.0 / fan_in)
        return self.add(name, self.rng.standard_normal(shape) * std)

    def zeros(self, name: str, shape: tuple) -> GpuTensor:
        return self.add(name, np.zeros(shape, np.float32))

    def ones(self, name: str, shape: tuple) -> GpuTensor:
        return self.add(name, np.ones(shape, np.float32))

    # -- the ParamGroup protocol -------------------------------------------------
    def params(self) -> dict[str, GpuTensor]:
        """``{name: tensor}`` in creation order (what Adam and ``Gradients.of`` take)."""
        return dict(self._tensors)

    def __getitem__(self, name: str) -> GpuTensor:
        return self._tensors[name]

    def __len__(self) -> int:
        return len(self._tensors)

    def spec(self) -> dict[str, tuple]:
        """``{name: shape}``: the architecture a weights file must match."""
        return {n: tuple(t.shape) for n, t in self._tensors.items()}

    def count(self) -> int:
        """Number of scalar weights."""
        return sum(t.numel for t in self._tensors.values())

    # -- NumPy round trip -----------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every tensor as float32 NumPy arrays, by name (reads the GPU)."""
        return {n: t.numpy() for n, t in self._tensors.items()}

    def load_state_dict(self, arrays: dict, source: str = "weights") -> None:
        """Overwrite every tensor with ``arrays[name]`` (all checked before any is written).

        Args:
            arrays: ``{name: array}`` with exactly this group's names and shapes, float32.
            source: what the arrays came from (a file path), named in errors.

        Raises:
            WeightsError: missing or unexpected names, a shape or dtype that differs (the weights
                belong to another architecture); the message names ``source`` and the first few
                differences.
        """
        want = self.spec()
        missing = [n for n in want if n not in arrays]
        extra = [n for n in arrays if n not in want]
        bad = [f"{n}: file {tuple(np.shape(arrays[n]))} vs network {want[n]}" for n in want
               if n in arrays and tuple(np.shape(arrays[n])) != want[n]]
        dtypes = [f"{n}: {np.asarray(arrays[n]).dtype}" for n in want
                  if n in arrays and np.asarray(arrays[n]).dtype != np.float32]
        problems = []
        if missing:
            problems.append(f"missing {_few(missing)}")
        if extra:
            problems.append(f"unexpected {_few(extra)}")
        if bad:
            problems.append(f"shapes differ ({_few(bad)})")
        if dtypes:
            problems.append(f"not float32 ({_few(dtypes)})")
        if problems:
            raise WeightsError(f"{source}: the weights do not fit this network ({len(want)} tensors): "
                               + "; ".join(problems) + ". Is it a file of another architecture or configuration?")
        for n, t in self._tensors.items():
            t.write(np.asarray(arrays[n], np.float32))


def _few(items: list, k: int = 4) -> str:
    shown = ", ".join(map(str, items[:k]))
    return shown + (f" and {len(items) - k} more" if len(items) > k else "")
