"""The Ray cluster a distributed command runs on (``--address``; default a local one).

Ray is an optional extra: :func:`require_ray` imports it or says how to install it.
"""

from __future__ import annotations

from ..errors import InputError, RunError

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

    Does nothing when this process is already connected. Returns the ``ray`` module. A local
    cluster that does not come up (Ray gives its raylet 30 s, which a heavily loaded machine can
    miss) is tried once more.

    Raises:
        InputError: Ray is not installed, or ``address`` cannot be reached (names ``--address``).
        RunError: a local cluster could not be started twice.
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address is None:
        for attempt in (1, 2):
            try:
                ray.init(num_cpus=num_cpus, **kwargs)
                return ray
            except Exception as exc:  # noqa: BLE001 - Ray raises a bare Exception when its node times out
                ray.shutdown()
                if attempt == 2:
                    raise RunError(f"could not start a local Ray cluster ({exc}); is the machine overloaded? "
                                   "Try again, or start one with `ray start --head` and pass --address") from exc
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise InputError(f"cannot connect to --address {address}: {exc} (start a cluster with `ray start --head` "
                         "and pass its address, or leave --address out for a local cluster)") from exc
    return ray
