"""The Ray cluster a distributed command runs on (``--address``; default a local one).

Ray is an optional extra: :func:`require_ray` imports it or says how to install it.
"""

from __future__ import annotations

from ..errors import InputError

__all__ = ["require_ray", "connect"]


def require_ray():
    """The ``ray`` module.

    Raises:
        InputError: Ray is not installed (the message says ``pip install 'brushpy[distributed]'``).
    """
    try:
        import ray
    except ImportError as exc:
        raise InputError("distributed training needs Ray, which is not installed: "
                         "pip install 'brushpy[distributed]'") from exc
    return ray


def connect(address: str | None, num_cpus: int | None = None):
    """Join the Ray cluster at ``address`` (``ray://host:10001``, ``host:6379`` or ``auto``), or start a
    local one on this machine when ``address`` is None (with ``num_cpus`` CPUs; default all).

    Does nothing when this process is already connected. Returns the ``ray`` module.

    Raises:
        InputError: Ray is not installed, or ``address`` cannot be reached (names ``--address``).
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if address is None:
            ray.init(num_cpus=num_cpus, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = "a local Ray cluster" if address is None else f"--address {address}"
        raise InputError(f"cannot connect to {where}: {exc} (start one with `ray start --head` and pass its "
                         "address, or leave --address out for a local cluster)") from exc
    return ray
