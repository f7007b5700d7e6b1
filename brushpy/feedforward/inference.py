"""Inference: splats from two context views of a dataset, by a trained encoder or the baseline.

:func:`predict` is what ``brushpy feedforward predict MODEL DATASET --context i,j`` runs. Views
are numbered in the order of ``Scene.views`` (training views then evaluation views, each sorted
by name), from 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..gpu import Recorder
from .baseline import BASELINE_NAME, plane_sweep_splats
from .context import check_overlap, check_same_size, depth_range, parse_resolution, view_sample
from .encoder import FeedForwardInputError


@dataclass
class Prediction:
    """What :func:`predict` made.

    Attributes:
        splats: the ``Splats`` (GPU), ``2·H·W``.
        inv_depth: per context view float32 [H, W], the predicted inverse depth.
        samples: the two context :class:`~brushpy.feedforward.context.ViewSample`.
        near, far: the cost volume's depth range.
        seconds: wall time of the network (or baseline) and lift, data loading excluded.
    """

    splats: object
    inv_depth: list
    samples: list
    near: float
    far: float
    seconds: float
    notes: list = field(default_factory=list)


def parse_context(text, num_views: int, need: int = 2) -> tuple[int, ...]:
    """``"i,j"`` → (i, j), checked against the dataset's ``num_views``.

    Raises:
        FeedForwardInputError: not ``need`` distinct integers, an index out of range, or a dataset
            with fewer than ``need`` views.
    """
    if num_views < need:
        raise FeedForwardInputError(f"the dataset has {num_views} view(s); the encoder needs {need} context views")
    try:
        idx = tuple(int(p) for p in str(text).split(","))
    except ValueError:
        raise FeedForwardInputError(f"--context {text!r}: give {need} view indices as i,j (e.g. 0,5)") from None
    if len(idx) != need or len(set(idx)) != need:
        raise FeedForwardInputError(f"--context {text!r}: give {need} different view indices as i,j")
    bad = [i for i in idx if not 0 <= i < num_views]
    if bad:
        raise FeedForwardInputError(f"--context {text!r}: view {bad[0]} is out of range (the dataset has views "
                                    f"0..{num_views - 1})")
    return idx


def context_samples(scene, context, resolution="128"):
    """The two context views of ``scene`` at ``resolution`` (checked for equal source sizes)."""
    views = scene.views
    idx = parse_context(context, len(views))
    chosen = [views[i] for i in idx]
    check_same_size(chosen, f"context views {idx[0]} and {idx[1]}")
    size = parse_resolution(resolution)
    return [view_sample(v, size) for v in chosen], idx


def predict(model, scene, context="0,1", resolution="128", near=None, far=None, num_planes=32) -> Prediction:
    """Splats from two context views of ``scene``.

    Args:
        model: an :class:`~brushpy.feedforward.encoder.Encoder`, or ``"plane-sweep"`` for the baseline.
        scene: a loaded :class:`~brushpy.data.Scene`.
        context: ``"i,j"`` view indices (or a pair).
        resolution: ``N`` or ``WxH``, multiples of 8.
        near, far: the depth range; default from the views' depths or the dataset's points.
        num_planes: D of the baseline (the encoder uses its own).

    Raises:
        FeedForwardInputError: bad context indices, images of different sizes, views that do not
            overlap, no depth range.
    """
    if isinstance(context, (tuple, list)):
        context = ",".join(map(str, context))
    samples, idx = context_samples(scene, context, resolution)
    if near is None or far is None:
        lo, hi = depth_range(samples, scene.init_points)
        near = lo if near is None else near
        far = hi if far is None else far
    if not 0 < near < far:
        raise FeedForwardInputError(f"depth range: need 0 < --near < --far, got {near} and {far}")
    check_overlap(samples, near, far, names=(f"{idx[0]} ({samples[0].name})", f"{idx[1]} ({samples[1].name})"))
    t0 = time.perf_counter()
    if isinstance(model, str):
        if model != BASELINE_NAME:
            raise FeedForwardInputError(f"model {model!r}: give a weights file or {BASELINE_NAME!r}")
        splats, inv = plane_sweep_splats(samples, near, far, num_planes)
        inv = [np.asarray(d, np.float32) for d in inv]
    else:
        rec = Recorder()
        out = model.forward(rec, [s.tensor() for s in samples], [s.camera for s in samples], near, far)
        rec.submit()
        splats = out.splats
        inv = [t.numpy().reshape(t.shape[2:]) for t in out.inv_depth]
    splats.means.numpy()  # wait for the GPU
    return Prediction(splats, inv, samples, float(near), float(far), time.perf_counter() - t0)
