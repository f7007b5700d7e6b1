"""brushpy: 3D Gaussian Splatting reconstruction in Python on WebGPU.

The functional API (numpy in, numpy out) is importable from the top level and
loaded lazily, so ``import brushpy`` does not start the GPU:

* :func:`brushpy.rasterize` — render splats to an RGBA image, or with ``outputs="RGB+ED"`` etc. a depth too (``brushpy.render.forward``).
* :func:`brushpy.rasterize_vjp` — gradients of ``sum(image * v_image) + sum(depth * v_depth)`` (``brushpy.render.backward``).
* :func:`brushpy.lift_depth` — initial splats from RGB-D views (``brushpy.train.lift``).
"""

__version__ = "0.1.0"

_LAZY = {
    "rasterize": ("brushpy.render.forward", "rasterize"),
    "rasterize_vjp": ("brushpy.render.backward", "rasterize_vjp"),
    "lift_depth": ("brushpy.train.lift", "lift_depth"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'brushpy' has no attribute {name!r}")
