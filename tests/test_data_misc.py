"""Options, args.txt, zip datasets, images (EXIF, masks, alpha, packing), view order."""

from __future__ import annotations

import json
import logging
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from brushpy.data import (
    LoadConfig,
    ViewOrder,
    load_dataset,
    pack_rgba8,
    parse_args_txt,
    read_args_txt,
    resolve_load_config,
)
from tests.conftest import SHARED, requires_shared

BEER = SHARED / "datasets" / "beer_colmap"


def _make_transforms(root, n=4, size=(40, 30), rgba=False, names=None):
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    frames = []
    names = names or [f"im{i}.png" for i in range(n)]
    for i, name in enumerate(names):
        ch = 4 if rgba else 3
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], ch), dtype=np.uint8)).save(root / "images" / name)
        m = np.eye(4)
        m[0, 3] = i
        frames.append({"file_path": f"images/{name}", "transform_matrix": m.tolist()})
    meta = {"fl_x": 40.0, "fl_y": 40.0, "cx": size[0] / 2, "cy": size[1] / 2, "w": size[0], "h": size[1], "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))


# ------------------------------------------------------------------ config / args.txt


def test_load_config_defaults_and_validation():
    c = LoadConfig()
    assert (c.max_resolution, c.max_frames, c.eval_split_every, c.alpha_mode, c.invert_masks) == (
        1920, None, None, None, False)
    from brushpy.train.config import ProcessConfig

    assert ProcessConfig().seed == 42 and not hasattr(c, "seed")  # one seed, ProcessConfig's
    with pytest.raises(ValueError, match="--max-frames"):
        LoadConfig(max_frames=0)
    with pytest.raises(ValueError, match="--alpha-mode"):
        LoadConfig(alpha_mode="opaque")
    with pytest.raises(ValueError, match="--max-resolution"):
        c.with_overrides({"max-resolution": "big"})


def test_parse_args_txt_forms():
    got = parse_args_txt("--max-resolution 800  # comment\n--invert-masks --eval-split-every=8\n--alpha-mode 'masked'\n--lr-mean -1e-5")
    assert got == {"max_resolution": "800", "invert_masks": True, "eval_split_every": "8", "alpha_mode": "masked",
                   "lr_mean": "-1e-5"}
    with pytest.raises(ValueError, match="args.txt: unexpected 'max-resolution'"):
        parse_args_txt("max-resolution 800")


def test_args_txt_precedence(tmp_path):
    _make_transforms(tmp_path, n=6)
    (tmp_path / "args.txt").write_text("--max-resolution 20 --max-frames 4 --eval-split-every 2 --total-steps 500\n")
    assert read_args_txt(tmp_path)["total_steps"] == "500"
    cfg = resolve_load_config(tmp_path, {"max_frames": 3, "max_resolution": None, "progress": False})
    assert (cfg.max_resolution, cfg.max_frames, cfg.eval_split_every) == (20, 3, 2)
    scene = load_dataset(tmp_path, cfg, decode=False)
    assert len(scene.train_views) + len(scene.eval_views) == 3 and len(scene.eval_views) == 2
    assert scene.train_views[0].camera.width == 20
    # No args.txt: plain defaults.
    (tmp_path / "args.txt").unlink()
    assert resolve_load_config(tmp_path, {}) == LoadConfig()


# ------------------------------------------------------------------------- zip


@requires_shared("datasets", "beer_colmap")
def test_zip_equals_folder(tmp_path):
    folder = tmp_path / "beer_small"
    (folder / "images").mkdir(parents=True)
    shutil.copytree(BEER / "sparse", folder / "sparse")
    for name in ("0000.jpg", "0001.jpg", "0002.jpg", "0003.jpg"):
        shutil.copy(BEER / "images" / name, folder / "images" / name)
    (folder / "args.txt").write_text("--max-resolution 96\n")
    zpath = tmp_path / "beer_small.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(tmp_path).as_posix())  # members under "beer_small/"
    scenes = []
    for path in (folder, zpath):
        cfg = resolve_load_config(path, {"progress": False, "eval_split_every": 2})
        assert cfg.max_resolution == 96
        scenes.append(load_dataset(path, cfg))
    a, b = scenes
    assert a.name == b.name == "beer_small"
    assert len(a.warnings) == len(b.warnings) and "skipped 67" in a.warnings[0]
    assert [v.name for v in a.views] == [v.name for v in b.views] == ["0001.jpg", "0003.jpg", "0000.jpg", "0002.jpg"]
    for va, vb in zip(a.views, b.views):
        assert np.array_equal(va.camera.world_to_camera, vb.camera.world_to_camera)
        assert va.camera.intrinsics == vb.camera.intrinsics
        assert np.array_equal(va.image, vb.image)
    assert np.array_equal(a.init_points.positions, b.init_points.positions)


# ---------------------------------------------------------------------- images


def test_resize_scales_intrinsics(tmp_path):
    _make_transforms(tmp_path, n=1, size=(400, 300))
    v = load_dataset(tmp_path, LoadConfig(max_resolution=100, progress=False)).train_views[0]
    assert (v.camera.width, v.camera.height) == (100, 75) and v.image.shape == (75, 100, 3)
    assert v.camera.intrinsics == pytest.approx((10.0, 10.0, 50.0, 37.5))


def test_exif_orientation_honoured(tmp_path):
    _make_transforms(tmp_path, n=1, size=(40, 30))
    # Store the pixels rotated with an EXIF tag (6 = rotate 90 degrees clockwise to display).
    upright = np.zeros((30, 40, 3), np.uint8)
    upright[:5, :, 0] = 255  # red band along the top edge
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # 40x30 stored; tag 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "images" / "im0.png").unlink()
    Image.fromarray(stored).save(tmp_path / "images" / "im0.jpg", exif=exif, quality=95)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    meta["frames"][0]["file_path"] = "images/im0.jpg"
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    v = load_dataset(tmp_path, LoadConfig(progress=False)).train_views[0]
    assert v.image.shape == (30, 40, 3)
    assert v.image[:4, :, 0].mean() > 200 and v.image[10:, :, 0].mean() < 30


def test_exif_rotation_ignored_when_camera_matches_stored_pixels(tmp_path, caplog):
    _make_transforms(tmp_path, n=1, size=(40, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = np.zeros((30, 40, 3), np.uint8)
    stored[:, :5] = 255
    (tmp_path / "images" / "im0.png").unlink()
    Image.fromarray(stored).save(tmp_path / "images" / "im0.jpg", exif=exif, quality=95)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    meta["frames"][0]["file_path"] = "images/im0.jpg"
    (tmp_path / "transforms.json").write_text(json.dumps(meta))  # declares w=40, h=30: the stored size
    with caplog.at_level(logging.WARNING, logger="brushpy.data"):
        v = load_dataset(tmp_path, LoadConfig(progress=False)).train_views[0]
    assert v.image.shape == (30, 40, 3) and v.image[:, :4].mean() > 200
    assert v.camera.intrinsics == (40.0, 40.0, 20.0, 15.0)
    assert any("EXIF rotation" in r.message for r in caplog.records)


def test_jpeg_reduced_decode_keeps_geometry(tmp_path):
    """A dot in an 800x600 JPEG decoded at 1/4 scale (libjpeg DCT scaling) stays where the camera says."""
    _make_transforms(tmp_path, n=1, size=(800, 600))
    yy, xx = np.mgrid[0:600, 0:800] + 0.5
    dot = (255 * np.exp(-((xx - 300.5) ** 2 + (yy - 201.0) ** 2) / (2 * 6.0**2))).astype(np.uint8)
    (tmp_path / "images" / "im0.png").unlink()
    Image.fromarray(np.repeat(dot[..., None], 3, 2)).save(tmp_path / "images" / "im0.jpg", quality=98)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    meta["frames"][0]["file_path"] = "images/im0.jpg"
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    v = load_dataset(tmp_path, LoadConfig(max_resolution=200, progress=False)).train_views[0]
    assert v.image.shape == (150, 200, 3)
    g = v.image[..., 1].astype(np.float64)
    g = np.where(g > 8, g, 0)
    yy, xx = np.mgrid[0:150, 0:200] + 0.5
    cx, cy = (g * xx).sum() / g.sum(), (g * yy).sum() / g.sum()
    assert abs(cx - 300.5 / 4) < 0.05 and abs(cy - 201.0 / 4) < 0.05, (cx, cy)


def test_masks_alpha_modes_and_invert(tmp_path):
    _make_transforms(tmp_path, n=2)
    (tmp_path / "masks").mkdir()
    m = np.zeros((30, 40), np.uint8)
    m[:, :20] = 255
    Image.fromarray(m).save(tmp_path / "masks" / "im0.png")  # only im0 has a mask
    scene = load_dataset(tmp_path, LoadConfig(progress=False))
    assert scene.alpha_mode == "masked"
    v0, v1 = scene.train_views
    assert v0.mask_path == "masks/im0.png" and v1.mask_path is None
    assert v0.image.shape == (30, 40, 3) and np.array_equal(v0.mask, m) and v1.mask is None
    packed = v0.packed_rgba8()
    assert np.array_equal(packed >> 24, m.astype(np.uint32))
    inv = load_dataset(tmp_path, LoadConfig(invert_masks=True, progress=False)).train_views[0]
    assert np.array_equal(inv.mask, 255 - m)
    tr = load_dataset(tmp_path, LoadConfig(alpha_mode="transparent", progress=False)).train_views[0]
    assert tr.image.shape == (30, 40, 4) and np.array_equal(tr.image[..., 3], m) and tr.mask is None


def test_rgba_in_masked_mode_becomes_mask(tmp_path):
    _make_transforms(tmp_path, n=1, rgba=True)
    raw = np.asarray(Image.open(tmp_path / "images" / "im0.png"))
    t = load_dataset(tmp_path, LoadConfig(progress=False))
    assert t.alpha_mode == "transparent" and t.has_alpha and np.array_equal(t.train_views[0].image, raw)
    v = load_dataset(tmp_path, LoadConfig(alpha_mode="masked", progress=False)).train_views[0]
    assert np.array_equal(v.image, raw[..., :3]) and np.array_equal(v.mask, raw[..., 3])


def test_pack_rgba8_byte_order():
    img = np.array([[[1, 2, 3], [250, 251, 252]]], np.uint8)
    p = pack_rgba8(img)
    assert p.dtype == np.uint32 and p.shape == (1, 2)
    assert p[0, 0] == 1 | 2 << 8 | 3 << 16 | 255 << 24
    rgba = np.array([[[9, 8, 7, 6]]], np.uint8)
    assert pack_rgba8(rgba)[0, 0] == 9 | 8 << 8 | 7 << 16 | 6 << 24
    assert pack_rgba8(rgba, np.array([[5]], np.uint8))[0, 0] >> 24 == 5
    with pytest.raises(ValueError, match="uint8"):
        pack_rgba8(img.astype(np.float32))


def test_corrupt_image_error_names_file(tmp_path):
    _make_transforms(tmp_path, n=2)
    (tmp_path / "images" / "im1.png").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="im1.png"):
        load_dataset(tmp_path, LoadConfig(progress=False))


def test_all_images_missing_errors(tmp_path):
    _make_transforms(tmp_path, n=2)
    shutil.rmtree(tmp_path / "images")
    with pytest.raises(ValueError, match=f"{tmp_path}.*no usable training views"):
        load_dataset(tmp_path, LoadConfig(progress=False))


# ------------------------------------------------------------------ view order


def test_view_order_reshuffles_each_epoch():
    order = ViewOrder(7, seed=42)
    epochs = [[order.next() for _ in range(7)] for _ in range(4)]
    assert all(sorted(e) == list(range(7)) for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1
    again = ViewOrder(7, seed=42)
    assert [again.next() for _ in range(28)] == sum(epochs, [])
    resumed = ViewOrder(7, seed=42, start_step=10)
    assert [resumed.next() for _ in range(18)] == sum(epochs, [])[10:]
    other = ViewOrder(7, seed=1)
    assert [other.next() for _ in range(28)] != sum(epochs, [])
    with pytest.raises(ValueError):
        ViewOrder(0)
