"""Per-epoch random view order for training."""

from __future__ import annotations

import numpy as np


class ViewOrder:
    """Yields view indices in a random order that is reshuffled every epoch.

    Each epoch visits every index in ``range(num_views)`` exactly once. The
    sequence is a pure function of ``(num_views, seed)``: epoch ``e`` uses the
    permutation drawn from ``numpy.random.default_rng([seed, e])``, so a run can
    resume at any step with ``ViewOrder(n, seed, start_step=step)``.

    Args:
        num_views: number of training views (> 0).
        seed: random seed (``--seed``, default 42).
        start_step: number of indices already consumed.

    Raises:
        ValueError: ``num_views`` < 1.
    """

    def __init__(self, num_views: int, seed: int = 42, start_step: int = 0):
        if num_views < 1:
            raise ValueError(f"ViewOrder needs at least one view, got {num_views}")
        self.num_views = int(num_views)
        self.seed = int(seed)
        self.step = int(start_step)
        self._epoch = -1
        self._perm: np.ndarray | None = None

    @property
    def epoch(self) -> int:
        """Epoch of the next index."""
        return self.step // self.num_views

    def permutation(self, epoch: int) -> np.ndarray:
        """The view order of ``epoch`` (int64 [num_views])."""
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_views)

    def next(self) -> int:
        """The next view index."""
        e = self.epoch
        if e != self._epoch:
            self._perm, self._epoch = self.permutation(e), e
        idx = int(self._perm[self.step % self.num_views])
        self.step += 1
        return idx

    def __iter__(self):
        return self

    def __next__(self) -> int:
        return self.next()
