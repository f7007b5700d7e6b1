"""Partitioned training (issue 19 part 2): the split, view and point assignment, the merge
(brushpy.distributed.partition, pure NumPy), and one small run on a local Ray cluster."""

from __future__ import annotations

import json

import numpy as np
import pytest

from brushpy.distributed.partition import (estimate_up, ground_frame, merge_splats, parse_grid, partition_scene)
from brushpy.errors import OptionError
from brushpy.render.camera import Camera

# A synthetic aerial capture: cameras 2 units above the ground plane z = 0 looking straight down,
# 100x100 pixels with f = 100 (a footprint of ±1 unit around the camera), headings turning by 90° from
# one camera to the next (real flights change heading; one shared heading leaves up undetermined).
HEIGHT, SIZE, FOCAL = 2.0, 100, 100.0


def nadir_camera(x: float, y: float, yaw_deg: float) -> Camera:
    """A camera at (x, y, HEIGHT) looking down -z, its image x axis at ``yaw_deg`` in the ground plane."""
    a = np.radians(yaw_deg)
    right = np.array([np.cos(a), np.sin(a), 0.0])
    forward = np.array([0.0, 0.0, -1.0])
    down = np.cross(forward, right)  # OpenCV: x right, y down, z forward (right-handed)
    r = np.stack([right, down, forward])
    centre = np.array([x, y, HEIGHT])
    w2c = np.eye(4)
    w2c[:3, :3] = r
    w2c[:3, 3] = -r @ centre
    return Camera(w2c, FOCAL, FOCAL, SIZE / 2, SIZE / 2, SIZE, SIZE)


def camera_grid(xs, ys) -> list[Camera]:
    return [nadir_camera(x, y, 90.0 * (i % 4)) for i, (x, y) in enumerate((x, y) for x in xs for y in ys)]


def ground_points(x_max: float, y_max: float, step: float = 0.05) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(step / 2, x_max, step), np.arange(step / 2, y_max, step), indexing="ij")
    return np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], axis=1)


def test_parse_grid():
    assert parse_grid("2x1") == (2, 1)
    assert parse_grid(" 3X2 ") == (3, 2)
    for bad in ("2", "0x1", "2x", "axb", "-1x2"):
        with pytest.raises(OptionError, match="--partition"):
            parse_grid(bad)


def test_up_from_nadir_oblique_and_level_cameras():
    cams = camera_grid([0.5, 1.5, 2.5], [0.5, 1.5])
    w2c = np.stack([c.world_to_camera for c in cams])
    # a nadir camera's image up is horizontal: the mean image-up vector alone would give a horizontal "up"
    assert abs(np.mean(-w2c[:, 1, :3], axis=0)[2]) < 1e-9
    np.testing.assert_allclose(estimate_up(w2c), [0, 0, 1], atol=1e-9)
    # level cameras (looking along the ground) around a point, and cameras pitched 30° down
    level = [Camera.look_at(np.array([3 * np.cos(t), 3 * np.sin(t), 1.0]), np.array([0, 0, 1.0 - p]),
                            np.array([0, 0, 1.0]), 50, 64, 48)
             for t in np.linspace(0, 2 * np.pi, 7)[:-1] for p in (0.0, 3 * np.tan(np.radians(30)))]
    up = estimate_up(np.stack([c.world_to_camera for c in level]))
    np.testing.assert_allclose(up, [0, 0, 1], atol=1e-6)
    # one shared heading (forward-facing capture): falls back to the mean image up
    same = np.stack([Camera.look_at(np.array([x, 0, 0.0]), np.array([x, 5, 0.0]), np.array([0, 0, 1.0]), 50, 64, 48)
                     .world_to_camera for x in (0, 1, 2)])
    np.testing.assert_allclose(estimate_up(same), [0, 0, 1], atol=1e-9)
    frame = ground_frame(w2c)
    np.testing.assert_allclose(frame.axes @ frame.up, 0, atol=1e-9)
    np.testing.assert_allclose(np.abs(frame.axes[0]), [1, 0, 0], atol=1e-9)  # u: the long side of the grid


def test_right_cameras_land_in_each_block():
    xs, ys = [0.5, 1.5, 2.5, 3.5], [0.5, 1.5]
    cams = camera_grid(xs, ys)
    part = partition_scene(cams, ground_points(4, 2), 2, 1, margin=0.2, visibility=0.25)
    assert [b.name for b in part.blocks] == ["0_0", "1_0"] and not part.skipped and not part.notes
    centres_x = np.array([c.position[0] for c in cams])
    first, second = part.blocks
    if part.frame.axes[0][0] < 0:  # u may point along -x; the rows then run the other way
        first, second = second, first
    cut = part.blocks[0].core[1][0]  # the shared edge, at the points' median: world x = 2
    assert part.frame.origin[0] + cut * part.frame.axes[0][0] == pytest.approx(2.0, abs=0.03)
    # block over x < 2: its own cameras and the neighbouring column (which sees 28% of its points, over the margin
    # of 0.4), not the far column (sees none of them)
    assert sorted(set(centres_x[first.view_indices])) == [0.5, 1.5, 2.5]
    assert sorted(set(centres_x[second.view_indices])) == [1.5, 2.5, 3.5]
    # points: inside the expanded block (the core x < 2 plus 0.2 × 2 = 0.4)
    pts = ground_points(4, 2)
    px = pts[first.point_indices, 0]
    assert px.max() == pytest.approx(2.375, abs=0.03) and px.min() < 0.05
    assert len(first.point_indices) + len(second.point_indices) > len(pts)  # the overlap is in both
    # without the margin and a strict visibility, blocks hold only what is over them
    tight = partition_scene(cams, pts, 2, 1, margin=0.0, visibility=0.9)
    assert sorted(len(b.view_indices) for b in tight.blocks) == [4, 4]
    assert sum(len(b.point_indices) for b in tight.blocks) == len(pts)


def test_blocks_no_camera_sees_are_skipped_with_a_note():
    cams = camera_grid([0.25, 0.75, 1.25, 1.75], [1.0])  # one line of cameras over x < 2 only
    pts = ground_points(8, 2)  # points out to x = 8
    part = partition_scene(cams, pts, 4, 1)
    assert len(part.blocks) + len(part.skipped) == 4
    assert [b.name for b in part.skipped] == ["2_0", "3_0"] and len(part.notes) == 2
    assert all("no camera sees it" in n and "skipped" in n for n in part.notes)
    far = np.array([[7.9, 1.0, 0.0]])
    # the far region belongs to the nearest trained block
    trained_max_u = max(part.frame.to_ground(pts[b.point_indices])[:, 0].max() for b in part.blocks)
    owner = part.blocks[int(part.owner(far)[0])]
    assert part.frame.to_ground(pts[owner.point_indices])[:, 0].max() == pytest.approx(trained_max_u)


def test_merge_keeps_each_splat_exactly_once():
    cams = camera_grid([0.5, 1.5, 2.5, 3.5], [0.5, 1.5])
    part = partition_scene(cams, ground_points(4, 2), 2, 2)
    rng = np.random.default_rng(0)
    n = 5000
    # far background and points on the cores' edges included
    means = np.concatenate([rng.uniform([-50, -50, -5], [50, 50, 5], (n, 3)),
                            np.array([[2.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])])
    splats = {"means": means, "raw_opacities": np.arange(len(means), dtype=np.float32),
              "sh_coeffs": rng.normal(size=(len(means), 4, 3))}
    # every block trained the same splats: the merge keeps each exactly once
    merged, kept = merge_splats(part, [splats] * len(part.blocks))
    assert sum(kept) == len(means) == len(merged["means"])
    np.testing.assert_array_equal(np.sort(merged["raw_opacities"]), splats["raw_opacities"])
    assert all(k > 0 for k in kept)
    # different splats per block: each block keeps those its core holds
    sets = [{k: v[b::len(part.blocks)] for k, v in splats.items()} for b in range(len(part.blocks))]
    merged, kept = merge_splats(part, sets)
    for b, s in enumerate(sets):
        assert kept[b] == int((part.owner(s["means"]) == b).sum())
    assert len(merged["means"]) == sum(kept)
    with pytest.raises(ValueError, match="splat sets"):
        merge_splats(part, sets[:1])


def test_step_budget():
    from brushpy.distributed.partitioned import block_steps

    assert block_steps(1000, 0, 2) == 500
    assert block_steps(1000, 200, 2) == 400
    assert block_steps(1001, 0, 4) == 250
    with pytest.raises(OptionError, match="--total-steps"):
        block_steps(10, 10, 2)


def test_scene_subset():
    from brushpy.data import InitPoints, Scene

    class V:
        def __init__(self, name):
            self.name = name

    pts = InitPoints(np.arange(12, dtype=np.float32).reshape(4, 3), np.zeros((4, 3)))
    scene = Scene("s", [V("a"), V("b"), V("c")], [V("e")], pts, "masked", None)
    sub = scene.subset(["c", "a"], [1, 3])
    assert [v.name for v in sub.train_views] == ["a", "c"] and sub.eval_views == []
    np.testing.assert_array_equal(sub.init_points.positions, pts.positions[[1, 3]])
    assert len(scene.train_views) == 3 and len(scene.init_points) == 4  # the scene itself is unchanged
    with pytest.raises(KeyError, match="zz"):
        scene.subset(["zz"])


def test_cli_bad_partition_options(monkeypatch):
    import sys

    from click.testing import CliRunner

    from brushpy.cli import main

    res = CliRunner().invoke(main, ["train", "--partition", "0x2"])
    assert res.exit_code == 2 and "--partition '0x2': give the grid as RxC" in res.output
    res = CliRunner().invoke(main, ["train", "--address", "127.0.0.1:6379"])
    assert res.exit_code == 2 and "--partition runs only" in res.output
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed: says how to get it, before any work
    res = CliRunner().invoke(main, ["train", "--partition", "2x1"])
    assert res.exit_code == 2 and "pip install 'brushpy[distributed]'" in res.output


# --------------------------------------------------------------------------- on Ray


@pytest.fixture(scope="module")
def local_ray():
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'brushpy[distributed]'")
    from brushpy.distributed.cluster import connect

    from brushpy.distributed.cluster import shutdown

    info = connect(None, num_cpus=2)  # a local cluster of 2 CPUs (tried twice: a loaded machine can miss Ray's 30 s)
    try:
        yield info
    finally:
        if info.started_here:
            shutdown()


def test_partitioned_run_writes_a_merged_ply(local_ray, gpu, tmp_path):
    """Two blocks of the embedded lego scene at 32 px, capped at 400 splats each, merged and fine-tuned."""
    from brushpy.cli.train import default_dataset
    from brushpy.data import LoadConfig
    from brushpy.io import read_splats
    from brushpy.train.config import ProcessConfig, TrainConfig
    from brushpy.distributed.partitioned import train_partitioned

    cap = 400
    summary = train_partitioned(
        default_dataset(), LoadConfig(max_resolution=32, max_frames=24),
        TrainConfig(total_steps=14, refine_every=5, max_splats=cap, sh_degree=1),
        ProcessConfig(export_path=str(tmp_path / "out"), eval_every=0, export_every=0, log_dir=None),
        (2, 1), finetune_steps=2, log=lambda line: None, progress=False)
    out = tmp_path / "out"
    assert [b["name"] for b in summary["blocks"]] == ["0_0", "1_0"]
    for b in summary["blocks"]:
        assert b["steps"] == 6 and 0 < b["num_splats"] <= cap and 0 < b["kept"] <= b["num_splats"]
        assert (out / "blocks" / b["name"] / "export_6.ply").is_file()
    merged = read_splats(out / "merged.ply")
    assert len(merged.means) == summary["merged"]["num_splats"] == sum(b["kept"] for b in summary["blocks"])
    assert np.isfinite(summary["merged"]["psnr"]) and np.isfinite(summary["finetune"]["psnr"])
    final = read_splats(summary["export"])
    assert len(final.means) == summary["finetune"]["num_splats"] > 0
    assert json.loads((out / "partition.json").read_text())["block_steps"] == 6
