"""Scene datasets: COLMAP, nerfstudio / instant-ngp and NeRF-synthetic loading, splits, masks, initial points.

Entry point: ``load_dataset(path, LoadConfig(...))`` -> ``Scene``. See ``dataset.py``.
"""

from .args_txt import merge_options, parse_args_txt, read_args_txt, resolve_load_config
from .config import LoadConfig
from .dataset import DatasetError, load_dataset
from .images import ImageDecodeError, pack_rgba8
from .init_points import InitPoints
from .order import ViewOrder
from .scene import Scene, View
from .source import DatasetSource

__all__ = [
    "DatasetError",
    "DatasetSource",
    "ImageDecodeError",
    "InitPoints",
    "LoadConfig",
    "Scene",
    "View",
    "ViewOrder",
    "load_dataset",
    "merge_options",
    "pack_rgba8",
    "parse_args_txt",
    "read_args_txt",
    "resolve_load_config",
]
