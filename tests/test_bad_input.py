"""Bad input reaches the user as one line, ``Error: <file or option>: <what to change>``, exit code 2,
never a traceback; inputs that used to load silently wrong are refused or fixed
(docs/robustness.md, section "Bad input", lists every case and its test here).

Every input is tiny and made in ``tmp_path``: a 3-image COLMAP fixture
(``tests.test_data_colmap._write_fixture``), a copy of the embedded lego_small scene, or
hand-written files.
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from brushpy.cli import main
from brushpy.data import DatasetError, LoadConfig, load_dataset
from brushpy.data import colmap
from brushpy.data.colmap import ColmapFormatError
from brushpy.data.nerfstudio import TransformsFormatError
from brushpy.data.source import DatasetSource
from brushpy.errors import InputError, OptionError
from tests.test_data_colmap import _write_fixture

LEGO = Path(__file__).resolve().parent.parent / "assets" / "lego_small"
FAST = LoadConfig(progress=False, num_workers=1)


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_input_error(res, *needles):
    """Exit 2, one ``Error:`` line naming each needle, no traceback."""
    assert res.exit_code == 2, res.output
    assert "Error:" in res.output and "Traceback" not in res.output, res.output
    for n in needles:
        assert str(n) in res.output, (n, res.output)


def colmap_fixture(root: Path, binary: bool = True, **kw) -> Path:
    _write_fixture(root, "PINHOLE", kw.pop("params", [50.0, 50.0, 32.0, 24.0]), binary=binary, **kw)
    return root / "sparse" / "0"


def rewrite_model(folder: Path, binary: bool, edit) -> None:
    """Read the model in ``folder``, let ``edit(model)`` change it, write it back."""
    model = colmap.read_model(DatasetSource(folder), "", binary)
    edit(model)
    colmap.write_model(folder, model, binary)


def lego_copy(tmp_path: Path, edit=None) -> Path:
    """lego_small with transforms_train.json changed by ``edit(data)`` (2 frames kept)."""
    root = tmp_path / "lego"
    shutil.copytree(LEGO, root)
    if edit is not None:
        p = root / "transforms_train.json"
        data = json.loads(p.read_text())
        data["frames"] = data["frames"][:2]
        edit(data)
        p.write_text(json.dumps(data))
    return root


# ------------------------------------------------------------------ options


@pytest.mark.parametrize("flag", ["--max-resolution", "--max-frames", "--num-workers"])
def test_option_zero_on_the_command_line(tmp_path, flag):
    res = cli("train", colmap_fixture(tmp_path).parent.parent, flag, "0")
    assert_input_error(res, flag)


@pytest.mark.parametrize("flag", ["--max-resolution", "--max-frames", "--num-workers"])
def test_option_zero_in_args_txt(tmp_path, flag):
    colmap_fixture(tmp_path)
    (tmp_path / "args.txt").write_text(f"{flag} 0\n")
    res = cli("train", tmp_path)
    assert_input_error(res, flag, "args.txt", "positive integer")


def test_load_config_rejects_zero_with_option_error():
    for name in ("max_resolution", "max_frames", "num_workers"):
        with pytest.raises(OptionError, match=f"--{name.replace('_', '-')}: 0 is out of range"):
            LoadConfig(**{name: 0})


# ------------------------------------------------------------ COLMAP poses


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("qvec", [[np.nan, 0, 0, 0], [0, 0, 0, 0]])
def test_colmap_bad_quaternion_names_image_and_file(tmp_path, binary, qvec):
    folder = colmap_fixture(tmp_path, binary=binary)

    def edit(model):
        model.images[2].qvec = np.array(qvec, float)

    rewrite_model(folder, binary, edit)
    name = "images.bin" if binary else "images.txt"
    with pytest.raises(ColmapFormatError, match=rf"{name}: image img_01\.png \(id 2\) has rotation quaternion"):
        load_dataset(tmp_path, FAST)
    assert_input_error(cli("train", tmp_path), name, "img_01.png")


@pytest.mark.parametrize("params", [[-50.0, 50.0, 32.0, 24.0], [0.0, 50.0, 32.0, 24.0], [50.0, np.inf, 32.0, 24.0]])
def test_colmap_bad_focal_length(tmp_path, params):
    colmap_fixture(tmp_path, params=params)
    with pytest.raises(ColmapFormatError, match=r"cameras\.bin: camera 1 \(PINHOLE.*focal length f[xy]"):
        load_dataset(tmp_path, FAST)
    assert_input_error(cli("train", tmp_path), "cameras.bin", "focal length")


def test_colmap_zero_width(tmp_path):
    folder = colmap_fixture(tmp_path)
    rewrite_model(folder, True, lambda m: setattr(m.cameras[1], "width", 0))
    assert_input_error(cli("train", tmp_path), "cameras.bin", "image size 0x48")


@pytest.mark.parametrize("name,offset_count", [("points3D.bin", 10**13), ("images.bin", 10**13), ("cameras.bin", 10**13)])
def test_colmap_header_count_checked_before_allocating(tmp_path, name, offset_count):
    folder = colmap_fixture(tmp_path)
    p = folder / name
    p.write_bytes(struct.pack("<Q", offset_count) + p.read_bytes()[8:])
    with pytest.raises(ColmapFormatError, match=rf"{name}: the header says 10000000000000 .* hold at most"):
        load_dataset(tmp_path, FAST)
    assert_input_error(cli("train", tmp_path), name, "header says")


def test_colmap_non_utf8_image_name(tmp_path):
    folder = colmap_fixture(tmp_path)
    p = folder / "images.bin"
    p.write_bytes(p.read_bytes().replace(b"img_00.png", b"img_\xff\xfe.png"))
    assert_input_error(cli("train", tmp_path), "images.bin", "not UTF-8")


def test_colmap_nan_points_name_the_file(tmp_path):
    folder = colmap_fixture(tmp_path)
    rewrite_model(folder, True, lambda m: m.points.xyz.__setitem__((1, 0), np.nan))
    assert_input_error(cli("train", tmp_path), "points3D.bin", "NaN")


def test_init_ply_nan_names_the_file(tmp_path):
    from brushpy.data import InitPoints
    from brushpy.io.ply import PlyFormatError

    header = b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
    data = header + np.array([[0, 0, 0], [np.nan, 0, 0]], "<f4").tobytes()
    with pytest.raises(PlyFormatError, match="init.ply: 1 of 2 point"):
        InitPoints.from_ply(data, "init.ply")


# ------------------------------------------------------------ transforms.json


def test_transforms_nan_transform_matrix(tmp_path):
    root = lego_copy(tmp_path, lambda d: d["frames"][1]["transform_matrix"][0].__setitem__(0, float("nan")))
    with pytest.raises(TransformsFormatError, match=r"transforms_train\.json: frame .*NaN or infinite"):
        load_dataset(root, FAST)


@pytest.mark.parametrize("key,value,needle", [
    ("camera_angle_x", "wide", "`camera_angle_x` is \"wide\", not a finite number"),
    ("camera_angle_x", 0.0, "field of view must be in (0, pi)"),
    ("camera_angle_x", -0.5, "field of view must be in (0, pi)"),
    ("fl_x", 0.0, "`fl_x` = 0; the focal length must be > 0"),
    ("fl_x", -10.0, "the focal length must be > 0"),
])
def test_transforms_bad_focal_names_the_file(tmp_path, key, value, needle):
    root = lego_copy(tmp_path, lambda d: d.update({key: value}))
    with pytest.raises(TransformsFormatError, match="transforms_train.json") as info:
        load_dataset(root, FAST)
    assert needle in str(info.value)
    assert_input_error(cli("train", root), "transforms_train.json", needle)


def test_transforms_missing_ply_file(tmp_path):
    root = lego_copy(tmp_path, lambda d: d.update(ply_file_path="nowhere.ply"))
    assert_input_error(cli("train", root), "transforms_train.json", "nowhere.ply", "not found")


def test_transforms_zero_width(tmp_path):
    root = lego_copy(tmp_path, lambda d: d.update(w=0, h=100))
    assert_input_error(cli("train", root), "transforms_train.json", "w x h = 0x100")


# ------------------------------------------------------------------ images


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_wide_greyscale_images_are_scaled_not_clipped(tmp_path, mode):
    colmap_fixture(tmp_path)
    codes = (np.arange(64 * 48).reshape(48, 64) * 21).astype(np.uint16)  # 0 .. 64491
    if mode == "I;16":
        img, path = Image.fromarray(codes), "img_00.png"
    elif mode == "I":
        img, path = Image.fromarray(codes.astype(np.int32)), "img_00.tif"
    else:
        img, path = Image.fromarray((codes / 65535.0).astype(np.float32)), "img_00.tif"
    assert img.mode == mode
    (tmp_path / "images" / "img_00.png").unlink()
    img.save(tmp_path / "images" / path)
    if path.endswith(".tif"):
        rewrite_model(tmp_path / "sparse" / "0", True, lambda m: setattr(m.images[1], "name", path))
    scene = load_dataset(tmp_path, FAST)
    view = next(v for v in scene.views if v.name == path)
    got = view.image[..., 0].astype(int)
    want = np.round(codes / 65535.0 * 255.0).astype(int)
    assert np.abs(got - want).max() <= 1
    assert (got == 255).mean() < 0.01  # clipping made ~100% of these pixels white


def test_decompression_bomb_names_the_file(tmp_path, monkeypatch):
    colmap_fixture(tmp_path)  # 64x48 = 3072 pixels per image
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's error: > 2x the limit
    res = cli("train", tmp_path)
    assert_input_error(res, "img_00.png", "decompression bomb", "downscale")
    # between the limit and twice it (a large real photo) the image loads, with Pillow's warning
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    with pytest.warns(Image.DecompressionBombWarning):
        scene = load_dataset(tmp_path, FAST)
    assert scene.train_views[0].image.shape[:2] == (48, 64)


def test_corrupt_zip_member_names_it(tmp_path):
    colmap_fixture(tmp_path / "scene")
    zpath = tmp_path / "scene.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as z:
        for f in sorted((tmp_path / "scene").rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(tmp_path))
    member = (tmp_path / "scene" / "sparse" / "0" / "cameras.bin").read_bytes()
    raw = bytearray(zpath.read_bytes())
    at = raw.find(member)
    raw[at + 10] ^= 0xFF
    zpath.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=r"scene\.zip:scene/sparse/0/cameras\.bin: the zip member is corrupt"):
        load_dataset(zpath, FAST)
    assert_input_error(cli("train", zpath), "cameras.bin", "corrupt")


def test_not_a_zip_is_a_dataset_error(tmp_path):
    p = tmp_path / "data.bin"
    p.write_bytes(b"hello")
    with pytest.raises(DatasetError, match="not a zip archive"):
        DatasetSource(p)


def test_symlink_loop_does_not_hang(tmp_path):
    colmap_fixture(tmp_path)
    (tmp_path / "images" / "loop").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "images" / "loop2").symlink_to(tmp_path / "images", target_is_directory=True)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("files", DatasetSource(tmp_path).files), daemon=True)
    t.start()
    t.join(timeout=30)
    assert not t.is_alive(), "walking a dataset with a symlink loop hangs"
    assert "images/img_00.png" in out["files"] and not any("loop/" in f for f in out["files"])
    scene = load_dataset(tmp_path, FAST)
    assert len(scene.views) == 3


def test_load_warnings_are_printed_once(tmp_path):
    colmap_fixture(tmp_path)
    (tmp_path / "images" / "img_02.png").unlink()
    # the warning is logged while loading; every view going to the eval set then stops the run before training
    res = cli("train", tmp_path, "--eval-split-every", "1")
    assert_input_error(res, "no usable training views")
    assert res.output.count("skipped 1 frame(s) whose image file is missing") == 1, res.output
    assert "warning: " in res.output


# --------------------------------------------------------------------- MIP


def test_object_dtype_npy_volume(tmp_path):
    p = tmp_path / "objects.npy"
    np.save(p, np.array([[[{"a": 1}]]], dtype=object), allow_pickle=True)
    assert_input_error(cli("mip", "train", p, "--iterations", "1"), "objects.npy", "Python objects")


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04garbage"])
def test_corrupt_mip_model(tmp_path, content):
    p = tmp_path / "model.npz"
    p.write_bytes(content)
    assert_input_error(cli("mip", "render", p, "-o", tmp_path / "out"), "model.npz", "cannot read")
    assert_input_error(cli("mip", "export", p, "-o", tmp_path / "m.ply"), "model.npz")


def test_mip_model_wrong_shapes(tmp_path):
    from brushpy.mip.model import MipModelError, read_model_file

    p = tmp_path / "model.npz"
    np.savez(p, means=np.zeros((4, 3)), log_scales=np.zeros((4, 3)), rotations=np.zeros((4, 3)),
             log_amplitudes=np.zeros(4))
    with pytest.raises(MipModelError, match=r"model\.npz: `rotations` is float64 \[4, 3\]"):
        read_model_file(p)
    np.savez(p, means=np.zeros((4, 3)))
    assert_input_error(cli("mip", "export", p, "-o", tmp_path / "m.ply"), "model.npz", "missing arrays")


# ------------------------------------------------------------------- viewer


def test_view_without_viewer_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imgui_bundle", None)  # `import imgui_bundle` now fails
    res = cli("view", tmp_path)
    assert_input_error(res, "the viewer needs the viewer extra: pip install 'brushpy[viewer]'")


def test_bad_input_errors_are_input_errors():
    from brushpy.cli.view import ViewerNotInstalled
    from brushpy.mip.model import MipModelError

    for cls in (DatasetError, ColmapFormatError, TransformsFormatError, OptionError, MipModelError, ViewerNotInstalled):
        assert issubclass(cls, InputError) and cls.exit_code == 2


def test_debug_shows_the_error_itself(tmp_path):
    p = tmp_path / "model.npz"
    p.write_bytes(b"garbage")
    res = CliRunner().invoke(main, ["--debug", "mip", "export", str(p), "-o", str(tmp_path / "m.ply")])
    assert isinstance(res.exception, InputError) and "model.npz" in str(res.exception)
