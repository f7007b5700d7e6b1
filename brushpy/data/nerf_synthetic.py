"""NeRF-synthetic (Blender) datasets: ``transforms_train.json`` + ``transforms_val/test.json``.

The per-file format is the nerfstudio one (``nerfstudio.py``): usually only
``camera_angle_x`` plus frames whose ``file_path`` has no extension
(``./train/r_0`` -> ``train/r_0.png``); RGBA images keep their alpha.

Splits: ``transforms_train.json`` is the training set. The evaluation set is
``transforms_test.json`` by default (``LoadConfig.synthetic_eval_split="test"``:
the 200-view split that NeRF, 3DGS and gsplat report numbers on), falling back
to ``transforms_val.json``. Brush instead uses ``transforms_val.json`` and falls
back to test (``synthetic_eval_split="val"`` reproduces that). With an eval file
present, ``eval_split_every`` is ignored (as in Brush).
"""

from __future__ import annotations

import posixpath

from .nerfstudio import load_ply_init, load_transforms_views, read_json
from .scene import LoadReport, View


def eval_file(source, train_rel: str, preference: str) -> str | None:
    """The eval transforms file beside ``train_rel``: preferred split first, then the other."""
    base = posixpath.dirname(train_rel)
    order = ("test", "val") if preference == "test" else ("val", "test")
    for split in order:
        rel = source.resolve(posixpath.join(base, f"transforms_{split}.json"))
        if rel is not None:
            return rel
    return None


def load_synthetic_views(source, train_rel: str, config, alpha_mode: str, report: LoadReport):
    """(train views, eval views or None when there is no eval file, init points or None)."""
    data = read_json(source, train_rel)
    train = load_transforms_views(source, train_rel, config, alpha_mode, report, data)
    ev_rel = eval_file(source, train_rel, config.synthetic_eval_split)
    evals: list[View] | None = None
    if ev_rel is not None:
        evals = load_transforms_views(source, ev_rel, config, alpha_mode, report)
    return train, evals, load_ply_init(source, train_rel, data, config)
