"""COLMAP sparse models: binary and text readers and writers.

Formats as documented by COLMAP ("Output format", src/colmap/scene/*):
``cameras``, ``images`` and ``points3D`` as ``.bin`` (little-endian) or
``.txt``. Poses are world-to-camera: ``p_cam = R(q) p_world + t`` with the
quaternion ``q = (w, x, y, z)``; camera axes are OpenCV's (+x right, +y down,
+z forward). 2D observations are pixel coordinates with the centre of the
top-left pixel at (0.5, 0.5), the convention brushpy's ``Camera`` uses.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..render.rotations import quaternions_to_matrices

# id -> (name, number of parameters); COLMAP's src/colmap/sensor/models.h.
CAMERA_MODELS: dict[int, tuple[str, int]] = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
MODEL_IDS = {name: (mid, n) for mid, (name, n) in CAMERA_MODELS.items()}


class ColmapFormatError(InputError):
    """A COLMAP file that cannot be parsed (the message names the file)."""


@dataclass
class ColmapCamera:
    """One ``cameras`` entry: ``params`` in COLMAP's order for ``model``."""

    id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # float64 [n]


@dataclass
class ColmapImage:
    """One ``images`` entry.

    Attributes:
        qvec: float64 [4] world-to-camera rotation quaternion (w, x, y, z).
        tvec: float64 [3] world-to-camera translation.
        xys: float64 [M,2] 2D observations (pixels, top-left pixel centre at 0.5).
        point3d_ids: int64 [M] the observed 3D point per observation, -1 for none.
    """

    id: int
    qvec: np.ndarray
    tvec: np.ndarray
    camera_id: int
    name: str
    xys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    point3d_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))

    def world_to_camera(self) -> np.ndarray:
        """float64 [4,4] world-to-camera matrix."""
        m = np.eye(4)
        m[:3, :3] = qvec_to_rotmat(self.qvec)
        m[:3, 3] = self.tvec
        return m


@dataclass
class ColmapPoints:
    """All ``points3D`` entries.

    Attributes:
        ids: int64 [P]; xyz: float64 [P,3]; rgb: uint8 [P,3]; errors: float64 [P]
        (mean reprojection error, pixels); tracks: P arrays int64 [L,2] of
        (image_id, point2d_idx).
    """

    ids: np.ndarray
    xyz: np.ndarray
    rgb: np.ndarray
    errors: np.ndarray
    tracks: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.ids)


def qvec_to_rotmat(q) -> np.ndarray:
    """Rotation matrix of COLMAP's quaternion (w, x, y, z) (normalised first), float64 [3,3]."""
    return quaternions_to_matrices(q)[0]


# ----------------------------------------------------------------- binary


class _Reader:
    def __init__(self, data: bytes, origin: str):
        self.data, self.pos, self.origin = memoryview(data), 0, origin

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ColmapFormatError(f"{self.origin}: file ends early (truncated or not a COLMAP binary file)")
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return out

    def array(self, dtype, count: int) -> np.ndarray:
        dt = np.dtype(dtype)
        size = dt.itemsize * count
        if self.pos + size > len(self.data):
            raise ColmapFormatError(f"{self.origin}: file ends early (truncated or not a COLMAP binary file)")
        out = np.frombuffer(self.data, dt, count, self.pos).copy()
        self.pos += size
        return out

    def cstring(self, what: str = "image name") -> str:
        end = bytes(self.data[self.pos:self.pos + 65536]).find(b"\0")
        if end < 0:
            raise ColmapFormatError(f"{self.origin}: unterminated {what}")
        raw = bytes(self.data[self.pos:self.pos + end])
        try:
            out = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ColmapFormatError(f"{self.origin}: {what} {raw!r} is not UTF-8; rename the image (and its "
                                    "entry) to a UTF-8 name, e.g. re-export the model with COLMAP") from None
        self.pos += end + 1
        return out

    def count(self, what: str, min_record: int) -> int:
        """The leading uint64 entry count, checked against the bytes left (``min_record`` bytes
        per entry at least) before anything is allocated for it."""
        (num,) = self.take("<Q")
        room = (len(self.data) - self.pos) // min_record
        if num > room:
            raise ColmapFormatError(
                f"{self.origin}: the header says {num} {what}, but the file's {len(self.data)} bytes hold at most "
                f"{room} (truncated or not a COLMAP binary file); re-export the model")
        return num


def read_cameras_binary(data: bytes, origin: str = "cameras.bin") -> dict[int, ColmapCamera]:
    """Parse ``cameras.bin`` bytes into ``{camera_id: ColmapCamera}``.

    Raises:
        ColmapFormatError: truncated file, a count larger than the file, or unknown model id
            (names ``origin``).
    """
    r = _Reader(data, origin)
    num = r.count("cameras", struct.calcsize("<iiQQ") + 8 * min(n for _, n in CAMERA_MODELS.values()))
    cams = {}
    for _ in range(num):
        cam_id, model_id, width, height = r.take("<iiQQ")
        if model_id not in CAMERA_MODELS:
            raise ColmapFormatError(f"{origin}: camera {cam_id} has unknown model id {model_id}")
        name, n = CAMERA_MODELS[model_id]
        cams[cam_id] = ColmapCamera(cam_id, name, int(width), int(height), r.array("<f8", n))
    return cams


def read_images_binary(data: bytes, origin: str = "images.bin") -> dict[int, ColmapImage]:
    """Parse ``images.bin`` bytes into ``{image_id: ColmapImage}``.

    Raises:
        ColmapFormatError: truncated file, a count larger than the file, or an image name that
            is not UTF-8 (names ``origin``).
    """
    r = _Reader(data, origin)
    obs_dtype = np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")])
    num = r.count("images", struct.calcsize("<i4d3di") + 1 + 8)
    images = {}
    for _ in range(num):
        vals = r.take("<i4d3di")
        image_id, qvec, tvec, cam_id = vals[0], np.array(vals[1:5]), np.array(vals[5:8]), vals[8]
        name = r.cstring(f"name of image {image_id}")
        (m,) = r.take("<Q")  # r.array checks m against the bytes left before allocating
        obs = r.array(obs_dtype, m)
        xys = np.stack([obs["x"], obs["y"]], axis=1) if m else np.zeros((0, 2))
        images[image_id] = ColmapImage(image_id, qvec, tvec, cam_id, name, xys, obs["id"].astype(np.int64))
    return images


def read_points3d_binary(data: bytes, origin: str = "points3D.bin", with_tracks: bool = True) -> ColmapPoints:
    """Parse ``points3D.bin`` bytes.

    Raises:
        ColmapFormatError: truncated file or a count larger than the file (names ``origin``).
    """
    r = _Reader(data, origin)
    rec = struct.Struct("<Q3d3BdQ")
    num = r.count("points", rec.size)
    ids = np.empty(num, np.int64)
    xyz = np.empty((num, 3))
    rgb = np.empty((num, 3), np.uint8)
    err = np.empty(num)
    tracks = []
    buf = r.data
    pos = r.pos
    n = len(buf)
    for i in range(num):
        if pos + rec.size > n:
            raise ColmapFormatError(f"{origin}: file ends early (truncated or not a COLMAP binary file)")
        v = rec.unpack_from(buf, pos)
        pos += rec.size
        ids[i] = v[0]
        xyz[i] = v[1:4]
        rgb[i] = v[4:7]
        err[i] = v[7]
        length = v[8]
        if pos + 8 * length > n:
            raise ColmapFormatError(f"{origin}: file ends early (truncated or not a COLMAP binary file)")
        if with_tracks:
            tracks.append(np.frombuffer(buf, "<i4", 2 * length, pos).reshape(length, 2).astype(np.int64))
        pos += 8 * length
    return ColmapPoints(ids, xyz, rgb, err, tracks)


def write_cameras_binary(cameras: dict[int, ColmapCamera]) -> bytes:
    out = [struct.pack("<Q", len(cameras))]
    for cam in cameras.values():
        mid, n = MODEL_IDS[cam.model]
        out.append(struct.pack("<iiQQ", cam.id, mid, cam.width, cam.height))
        out.append(np.asarray(cam.params, "<f8").reshape(n).tobytes())
    return b"".join(out)


def write_images_binary(images: dict[int, ColmapImage]) -> bytes:
    out = [struct.pack("<Q", len(images))]
    for im in images.values():
        out.append(struct.pack("<i4d3di", im.id, *im.qvec, *im.tvec, im.camera_id))
        out.append(im.name.encode("utf-8") + b"\0")
        out.append(struct.pack("<Q", len(im.xys)))
        rec = np.empty(len(im.xys), np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")]))
        rec["x"], rec["y"], rec["id"] = im.xys[:, 0], im.xys[:, 1], im.point3d_ids
        out.append(rec.tobytes())
    return b"".join(out)


def write_points3d_binary(points: ColmapPoints) -> bytes:
    out = [struct.pack("<Q", len(points))]
    for i in range(len(points)):
        t = points.tracks[i] if points.tracks else np.zeros((0, 2), np.int64)
        out.append(struct.pack("<Q3d3BdQ", int(points.ids[i]), *points.xyz[i], *points.rgb[i].tolist(),
                               float(points.errors[i]), len(t)))
        out.append(np.asarray(t, "<i4").tobytes())
    return b"".join(out)


# ------------------------------------------------------------------- text


def _data_lines(text: str):
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#"):
            continue
        yield s


def read_cameras_text(text: str, origin: str = "cameras.txt") -> dict[int, ColmapCamera]:
    """Parse ``cameras.txt``: ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS...`` per line."""
    cams = {}
    for line in _data_lines(text):
        if not line:
            continue
        tok = line.split()
        try:
            cam_id, model, width, height = int(tok[0]), tok[1], int(tok[2]), int(tok[3])
            params = np.array([float(v) for v in tok[4:]])
        except (ValueError, IndexError):
            raise ColmapFormatError(f"{origin}: cannot parse camera line {line!r}") from None
        if model not in MODEL_IDS:
            raise ColmapFormatError(f"{origin}: camera {cam_id} has unknown model {model!r}")
        if len(params) != MODEL_IDS[model][1]:
            raise ColmapFormatError(f"{origin}: camera {cam_id} ({model}) has {len(params)} params, expected {MODEL_IDS[model][1]}")
        cams[cam_id] = ColmapCamera(cam_id, model, width, height, params)
    return cams


def read_images_text(text: str, origin: str = "images.txt") -> dict[int, ColmapImage]:
    """Parse ``images.txt``: two lines per image (pose + name, then ``X Y POINT3D_ID`` triples)."""
    lines = list(_data_lines(text))
    # Drop trailing blank lines only; a blank line inside is an image without observations.
    while lines and not lines[-1]:
        lines.pop()
    images = {}
    i = 0
    while i < len(lines):
        if not lines[i]:
            i += 1
            continue
        tok = lines[i].split(maxsplit=9)
        try:
            image_id = int(tok[0])
            qvec = np.array([float(v) for v in tok[1:5]])
            tvec = np.array([float(v) for v in tok[5:8]])
            cam_id = int(tok[8])
            name = tok[9]
        except (ValueError, IndexError):
            raise ColmapFormatError(f"{origin}: cannot parse image line {lines[i]!r}") from None
        pts = lines[i + 1].split() if i + 1 < len(lines) else []
        if len(pts) % 3:
            raise ColmapFormatError(f"{origin}: observations of image {image_id} are not X Y POINT3D_ID triples")
        arr = np.array(pts, dtype=np.float64).reshape(-1, 3) if pts else np.zeros((0, 3))
        images[image_id] = ColmapImage(image_id, qvec, tvec, cam_id, name, arr[:, :2].copy(), arr[:, 2].astype(np.int64))
        i += 2
    return images


def read_points3d_text(text: str, origin: str = "points3D.txt", with_tracks: bool = True) -> ColmapPoints:
    """Parse ``points3D.txt``: ``ID X Y Z R G B ERROR (IMAGE_ID POINT2D_IDX)...`` per line."""
    ids, xyz, rgb, err, tracks = [], [], [], [], []
    for line in _data_lines(text):
        if not line:
            continue
        tok = line.split()
        try:
            ids.append(int(tok[0]))
            xyz.append([float(v) for v in tok[1:4]])
            rgb.append([int(v) for v in tok[4:7]])
            err.append(float(tok[7]))
            if with_tracks:
                tracks.append(np.array(tok[8:], dtype=np.int64).reshape(-1, 2))
        except (ValueError, IndexError):
            raise ColmapFormatError(f"{origin}: cannot parse point line {line[:80]!r}") from None
    return ColmapPoints(
        np.array(ids, np.int64), np.array(xyz, np.float64).reshape(-1, 3), np.array(rgb, np.uint8).reshape(-1, 3),
        np.array(err, np.float64), tracks,
    )


def _f(v: float) -> str:
    return repr(float(v))


def write_cameras_text(cameras: dict[int, ColmapCamera]) -> str:
    lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    for c in cameras.values():
        lines.append(" ".join([str(c.id), c.model, str(c.width), str(c.height)] + [_f(p) for p in c.params]))
    return "\n".join(lines) + "\n"


def write_images_text(images: dict[int, ColmapImage]) -> str:
    lines = ["# Image list with two lines of data per image:",
             "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
             "#   POINTS2D[] as (X, Y, POINT3D_ID)"]
    for im in images.values():
        lines.append(" ".join([str(im.id)] + [_f(v) for v in im.qvec] + [_f(v) for v in im.tvec] + [str(im.camera_id), im.name]))
        lines.append(" ".join(f"{_f(x)} {_f(y)} {int(p)}" for (x, y), p in zip(im.xys, im.point3d_ids)))
    return "\n".join(lines) + "\n"


def write_points3d_text(points: ColmapPoints) -> str:
    lines = ["# 3D point list with one line of data per point:",
             "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)"]
    for i in range(len(points)):
        t = points.tracks[i] if points.tracks else np.zeros((0, 2), np.int64)
        parts = [str(int(points.ids[i]))] + [_f(v) for v in points.xyz[i]] + [str(int(v)) for v in points.rgb[i]]
        parts.append(_f(points.errors[i]))
        parts += [str(int(v)) for v in np.asarray(t).reshape(-1)]
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- models


@dataclass
class ColmapModel:
    """A whole sparse model as read from one folder."""

    cameras: dict[int, ColmapCamera]
    images: dict[int, ColmapImage]
    points: ColmapPoints | None
    folder: str  # relative folder inside the dataset ("" = root)
    binary: bool


def model_files(folder: str, binary: bool) -> tuple[str, str, str]:
    """Relative paths of (cameras, images, points3D) in ``folder`` for the given format."""
    ext = "bin" if binary else "txt"
    pre = f"{folder}/" if folder else ""
    return (f"{pre}cameras.{ext}", f"{pre}images.{ext}", f"{pre}points3D.{ext}")


def write_model(folder, model: ColmapModel, binary: bool) -> None:
    """Write ``model`` into the directory ``folder`` (a filesystem path) as .bin or .txt files."""
    from pathlib import Path

    from ..io.atomic import atomic_write

    folder = Path(folder)
    if binary:
        files = {"cameras.bin": write_cameras_binary(model.cameras), "images.bin": write_images_binary(model.images)}
        if model.points is not None:
            files["points3D.bin"] = write_points3d_binary(model.points)
    else:
        files = {"cameras.txt": write_cameras_text(model.cameras), "images.txt": write_images_text(model.images)}
        if model.points is not None:
            files["points3D.txt"] = write_points3d_text(model.points)
    for name, content in files.items():  # each file atomically (a failed write keeps the old one)
        with atomic_write(folder / name) as f:
            f.write(content if isinstance(content, bytes) else content.encode("utf-8"))


def read_model(source, folder: str, binary: bool, with_points: bool = True) -> ColmapModel:
    """Read the model in ``folder`` of a ``DatasetSource`` (points3D optional: None when absent)."""
    cam_rel, img_rel, pts_rel = model_files(folder, binary)
    pts_rel = source.resolve(pts_rel)
    if binary:
        cams = read_cameras_binary(source.read_bytes(cam_rel), source.display_path(cam_rel))
        imgs = read_images_binary(source.read_bytes(img_rel), source.display_path(img_rel))
        pts = (read_points3d_binary(source.read_bytes(pts_rel), source.display_path(pts_rel), with_tracks=False)
               if with_points and pts_rel else None)
    else:
        cams = read_cameras_text(_read_text(source, cam_rel), source.display_path(cam_rel))
        imgs = read_images_text(_read_text(source, img_rel), source.display_path(img_rel))
        pts = (read_points3d_text(_read_text(source, pts_rel), source.display_path(pts_rel), with_tracks=False)
               if with_points and pts_rel else None)
    return ColmapModel(cams, imgs, pts, folder, binary)


def _read_text(source, rel: str) -> str:
    try:
        return source.read_bytes(rel).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ColmapFormatError(f"{source.display_path(rel)}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                "re-export the model with COLMAP") from None


def find_models(source) -> list[tuple[str, bool]]:
    """All (folder, binary) pairs in the dataset that hold both cameras and images files."""
    out = []
    for f in source.files:
        base = f.rsplit("/", 1)[-1]
        if base in ("cameras.bin", "cameras.txt"):
            folder = f.rsplit("/", 1)[0] if "/" in f else ""
            binary = base.endswith(".bin")
            if source.exists(model_files(folder, binary)[1]):
                out.append((folder, binary))
    return sorted(out)


def count_images(source, folder: str, binary: bool) -> int:
    """Number of registered images in a model without parsing the observations (binary) or fully (text)."""
    rel = model_files(folder, binary)[1]
    data = source.read_bytes(rel)
    if binary:
        if len(data) < 8:
            raise ColmapFormatError(f"{source.display_path(rel)}: file ends early")
        return struct.unpack_from("<Q", data, 0)[0]
    return len(read_images_text(_read_text(source, rel), source.display_path(rel)))


# ------------------------------------------------------------ scene loading


def select_model(source) -> tuple[str, bool] | None:
    """The model (folder, binary) with the most registered images (ties: first by path); None if none."""
    models = find_models(source)
    if not models:
        return None
    if len(models) == 1:
        return models[0]
    import logging

    log = logging.getLogger("brushpy.data")
    counts = []
    for folder, binary in models:
        n = count_images(source, folder, binary)
        log.info("COLMAP model %s/ (%s) registers %d images", folder or ".", "bin" if binary else "txt", n)
        counts.append(n)
    best = int(np.argmax(counts))
    log.info("using COLMAP model %s/ (most images)", models[best][0] or ".")
    return models[best]


_NOT_IMAGE_FOLDERS = ("masks", "depth", "depths")


def find_image_file(source, name: str) -> str | None:
    """Resolve a COLMAP image name: ``images/<name>``, ``<name>``, then any file ending in
    ``/<name>`` outside ``masks/`` and ``depth(s)/`` folders (shortest path first)."""
    for cand in (f"images/{name}", name):
        hit = source.resolve(cand)
        if hit is not None:
            return hit
    suffix = "/" + name.lower()
    hits = [f for f in source.files
            if f.lower().endswith(suffix) and not set(_NOT_IMAGE_FOLDERS) & set(f.lower().split("/")[:-1])]
    return min(hits, key=lambda f: (len(f), f)) if hits else None


def observed_points(model: ColmapModel) -> dict[int, np.ndarray]:
    """``{image_id: world points [N,3]}``: the points3D each image observes (its 2D observations'
    point ids, the image side of COLMAP's tracks). Ids missing from points3D are skipped."""
    out = {}
    if model.points is None or len(model.points) == 0:
        return out
    order = np.argsort(model.points.ids)
    ids = model.points.ids[order]
    for im in model.images.values():
        pid = np.unique(im.point3d_ids[im.point3d_ids >= 0])
        pos = np.minimum(np.searchsorted(ids, pid), len(ids) - 1)
        rows = order[pos[ids[pos] == pid]]
        out[im.id] = model.points.xyz[rows]
    return out


def load_colmap_scene(source, config, alpha_mode: str, report):
    """Views (sorted by name, frame options applied) and initial points of the dataset's COLMAP model.

    Depth: a map in a ``depth/`` (``depths/``) folder matched by image stem; else, with
    ``config.depth_from_points``, sparse depth from the points3D the image observes.

    Returns:
        (views, init_points or None, model folder) or None when the dataset has no COLMAP model.

    Raises:
        ColmapFormatError: bad model files: unparsable, a non-finite or zero rotation quaternion or
            translation, a non-positive or non-finite focal length, a zero image size, non-finite
            points (names the file and the image or camera).
        UnsupportedCameraModel: camera models brushpy cannot undistort.
        depth.DepthMapError: an unreadable depth map or one of another aspect than its image.
    """
    from .depth import depth_index, find_depth
    from .images import find_mask, mask_index
    from .init_points import InitPoints
    from .scene import camera_problem, make_view, natural_key, select_frames
    from .undistort import colmap_camera_intrinsics

    chosen = select_model(source)
    if chosen is None:
        return None
    folder, binary = chosen
    model = read_model(source, folder, binary)
    cam_origin = source.display_path(model_files(folder, binary)[0])
    img_origin = source.display_path(model_files(folder, binary)[1])
    masks = mask_index(source)
    depths = depth_index(source)
    observed = observed_points(model) if config.depth_from_points else {}
    if config.depth_from_points and not observed:
        report.warn(f"{source.path}: --depth-from-points: the COLMAP model has no points3D; no sparse depth")
    entries = []
    for im in sorted(model.images.values(), key=lambda im: natural_key(im.name)):
        rel = find_image_file(source, im.name)
        if rel is None:
            report.missing.append(im.name)
            continue
        entries.append((im, rel))
    views = []
    for im, rel in select_frames(entries, config):
        cam = model.cameras.get(im.camera_id)
        if cam is None:
            raise ColmapFormatError(
                f"{img_origin}: image {im.name} uses camera {im.camera_id}, "
                f"which {cam_origin} does not define"
            )
        q = np.asarray(im.qvec, np.float64)
        if not np.all(np.isfinite(q)) or np.linalg.norm(q) < 1e-8:
            raise ColmapFormatError(
                f"{img_origin}: image {im.name} (id {im.id}) has rotation quaternion (w, x, y, z) = "
                f"({', '.join(f'{v:g}' for v in q)}), which is not a rotation; fix its pose or remove the image "
                "from the model")
        if not np.all(np.isfinite(im.tvec)):
            raise ColmapFormatError(
                f"{img_origin}: image {im.name} (id {im.id}) has a non-finite translation "
                f"({', '.join(f'{v:g}' for v in im.tvec)}); fix its pose or remove the image from the model")
        fx, fy, cx, cy, dist = colmap_camera_intrinsics(cam.model, cam.params, cam_origin)
        problem = camera_problem((fx, fy, cx, cy), (cam.width, cam.height))
        if problem:
            raise ColmapFormatError(f"{cam_origin}: camera {cam.id} ({cam.model}, used by {im.name}): {problem}")
        views.append(make_view(source, rel, im.world_to_camera(), (fx, fy, cx, cy), (cam.width, cam.height), dist,
                               cam.model, config, alpha_mode, find_mask(source, rel, masks), report,
                               depth_path=find_depth(rel, depths), depth_points=observed.get(im.id)))
    points = None
    if model.points is not None and len(model.points) > 0:
        bad = ~np.all(np.isfinite(model.points.xyz), axis=1)
        if bad.any():
            pts_origin = source.display_path(source.resolve(model_files(folder, binary)[2]) or model_files(folder, binary)[2])
            raise ColmapFormatError(
                f"{pts_origin}: {int(bad.sum())} of {len(bad)} point(s) have NaN or infinite coordinates "
                f"(first: point {int(model.points.ids[bad][0])}); remove them, or remove the file to start "
                "from random points")
        points = InitPoints(model.points.xyz, model.points.rgb.astype(np.float32) / 255.0).subsample(config.subsample_points)
    return views, points, folder
