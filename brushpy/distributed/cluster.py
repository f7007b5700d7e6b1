"""The one owner of Ray access: importing it, joining or starting a cluster, resource checks, shutdown.

Ray (https://docs.ray.io) is an optional dependency (``pip install 'brushpy[distributed]'``, which
installs ``ray[default]``: the scheduler, object store and dashboard). Every other module of
:mod:`brushpy.distributed` reaches Ray through :func:`require_ray` and :func:`connect`.

Clusters: ``ray start --head`` on one machine prints its address (``HOST:6379``); ``ray start
--address=HOST:6379`` on each other machine joins it; ``--address HOST:6379`` then points brushpy at
it. Without an address, :func:`connect` starts a local cluster on this machine (it lives as long as
this process, or until :func:`shutdown`).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

__all__ = ["ClusterError", "ClusterInfo", "RayMissingError", "check_resources", "connect", "require_ray",
           "shutdown", "INSTALL_HINT"]

#: How to install the optional dependency, as every message about it says.
INSTALL_HINT = "pip install 'brushpy[distributed]'"
#: Ray's default GCS port (``ray start --head`` listens there unless told otherwise).
DEFAULT_PORT = 6379
#: Seconds to wait for the TCP connection to a cluster's address before giving up.
CONNECT_TIMEOUT_S = 5.0
#: Object store of a local cluster started here: brushpy passes only small results through it
#: (scenes and splats stay on disk), so a small store leaves memory to training.
LOCAL_OBJECT_STORE_BYTES = 200 * 2**20


class RayMissingError(InputError):
    """Ray is not installed (the message says how to install it)."""


class ClusterError(InputError):
    """A cluster that cannot be used: unreachable, refused the connection, or without the resources
    the options ask for (the message names the option: ``--address``, ``--gpus-per-scene``,
    ``--cpus-per-scene``)."""


@dataclass
class ClusterInfo:
    """The cluster :func:`connect` reached.

    Attributes:
        address: the address given (``None``: a local cluster on this machine).
        started_here: this call started or joined Ray (so :func:`shutdown` belongs to the caller);
            False when Ray was already initialised in this process (e.g. by a test) and is reused.
        resources: ``ray.cluster_resources()`` at connection (``CPU``, ``GPU``, ... totals).
    """

    address: str | None
    started_here: bool
    resources: dict = field(default_factory=dict)

    def describe(self) -> str:
        """``"local cluster (2 CPUs, 0 GPUs)"`` or ``"cluster at HOST:6379 (…)"``."""
        where = "local cluster" if self.address is None else f"cluster at {self.address}"
        cpus = self.resources.get("CPU", 0)
        gpus = self.resources.get("GPU", 0)
        return f"{where} ({cpus:g} CPUs, {gpus:g} GPUs)"


def require_ray():
    """Import and return the ``ray`` module.

    Raises:
        RayMissingError: Ray is not installed; the message says ``pip install 'brushpy[distributed]'``.
    """
    try:
        import ray
    except ImportError as exc:  # ModuleNotFoundError, or a broken install
        raise RayMissingError(
            f"this command runs on Ray, which is not installed ({exc}); install it with {INSTALL_HINT}"
        ) from exc
    return ray


def parse_address(address: str) -> tuple[str, int] | None:
    """``"HOST:PORT"``, ``"HOST"`` (port 6379) or ``"ray://HOST:PORT"`` -> ``(host, port)`` to probe;
    ``"auto"`` (Ray finds the cluster this machine belongs to) -> None.

    Raises:
        ClusterError: an address that is none of these (names ``--address``).
    """
    text = address.strip()
    if text == "auto":
        return None
    if "://" in text:
        scheme, text = text.split("://", 1)
        if scheme != "ray":
            raise ClusterError(f"--address {address}: use HOST:PORT (a Ray head, e.g. 10.0.0.5:6379), "
                               "ray://HOST:PORT (Ray Client) or auto")
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(DEFAULT_PORT)
    if host.startswith("[") and host.endswith("]"):  # [::1]:6379
        host = host[1:-1]
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"--address {address}: expected HOST:PORT, e.g. 10.0.0.5:6379 "
                           "(the address `ray start --head` prints)")
    return host, int(port)


def probe_address(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Open (and close) a TCP connection to the cluster's address, waiting at most ``timeout_s``.

    Ray itself keeps retrying an unreachable head for a minute or more; this check makes an
    unreachable ``--address`` fail in seconds with a message saying what to check.

    Raises:
        ClusterError: nothing answers there within ``timeout_s`` (names ``--address``).
    """
    target = parse_address(address)
    if target is None:
        return
    host, port = target
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = "no answer" if isinstance(exc, (socket.timeout, TimeoutError)) else str(exc)
        raise ClusterError(
            f"--address {address}: cannot reach a Ray cluster at {host}:{port} within {timeout_s:g} s ({reason}). "
            "Start one there with `ray start --head` (it prints the address to use), check the host, the port "
            "(default 6379) and the firewall, or leave out --address to start a local cluster on this machine"
        ) from exc


def _local_runtime_env() -> dict:
    """Workers of a local cluster import the same brushpy as this process (a checkout run with
    ``PYTHONPATH`` or pytest's ``pythonpath`` included), whatever is installed."""
    root = str(Path(__file__).resolve().parent.parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


def connect(address: str | None, num_cpus: int | None = None, *, dashboard: bool = False,
            timeout_s: float = CONNECT_TIMEOUT_S) -> ClusterInfo:
    """Join the Ray cluster at ``address``, or start a local one on this machine.

    Args:
        address: ``HOST:PORT`` of a head started with ``ray start --head`` (``ray://HOST:PORT`` for
            Ray Client, ``auto`` for the cluster this machine has joined); None starts a local cluster.
        num_cpus: CPUs a local cluster offers (default: all of this machine's); ignored when joining,
            where each node declared its own at ``ray start``.
        dashboard: start Ray's dashboard with a local cluster (http://127.0.0.1:8265).
        timeout_s: how long the address may take to answer (:func:`probe_address`).

    If Ray is already initialised in this process (a test's cluster, or a caller's), it is reused
    and ``started_here`` is False.

    Returns:
        :class:`ClusterInfo`.

    Raises:
        RayMissingError: Ray is not installed.
        ClusterError: ``address`` is malformed, does not answer within ``timeout_s``, or Ray refused
            to connect (the message carries Ray's reason: a version mismatch, authentication, ...).
    """
    ray = require_ray()
    if address is not None:
        probe_address(address, timeout_s)
    if ray.is_initialized():
        return ClusterInfo(address=address, started_here=False, resources=dict(ray.cluster_resources()))
    kwargs = dict(log_to_driver=False, configure_logging=True, logging_level="warning")
    if address is None:
        kwargs.update(num_cpus=num_cpus, include_dashboard=dashboard, runtime_env=_local_runtime_env(),
                      object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    else:
        kwargs.update(address=address)
    # A local start on a busy machine can outrun Ray's fixed 30 s wait for its own raylet: try twice.
    for attempt in range(2 if address is None else 1):
        try:
            ray.init(**kwargs)
            break
        except Exception as exc:  # noqa: BLE001 - Ray raises many types; every one means "cannot use it"
            ray.shutdown()  # stop what a half-started local cluster left running
            if address is None and attempt == 0:
                continue
            if address is None:
                raise ClusterError(f"cannot start a local Ray cluster: {type(exc).__name__}: {exc} (on a busy "
                                   "machine, try again; or start one with `ray start --head` and pass --address)"
                                   ) from exc
            raise ClusterError(
                f"--address {address}: cannot connect to the Ray cluster there: {type(exc).__name__}: {exc} (is it "
                f"a Ray head of the same Ray and Python version? `ray status --address {address}` tells)") from exc
    return ClusterInfo(address=address, started_here=True, resources=dict(ray.cluster_resources()))


def check_resources(gpus_per_scene: float, cpus_per_scene: float, address: str | None = None) -> None:
    """Check that some live node of the connected cluster can run one task with these resources.

    Ray would otherwise keep such a task pending forever (a hang, not an error).

    Args:
        gpus_per_scene: GPUs per task (``--gpus-per-scene``; fractions share a GPU; 0: none).
        cpus_per_scene: CPUs per task (``--cpus-per-scene``).
        address: the cluster's address, for the message.

    Raises:
        ClusterError: no node has that many GPUs (or CPUs); the message names the option, what the
            cluster has, and what to change.
    """
    ray = require_ray()
    nodes = [n for n in ray.nodes() if n.get("Alive", n.get("alive", False))]
    where = "the local Ray cluster" if address is None else f"the Ray cluster at {address}"
    per_node = [(float(n["Resources"].get("GPU", 0)), float(n["Resources"].get("CPU", 0))) for n in nodes]
    most_gpus = max((g for g, _ in per_node), default=0.0)
    most_cpus = max((c for _, c in per_node), default=0.0)
    if gpus_per_scene > 0 and most_gpus == 0:
        raise ClusterError(
            f"--gpus-per-scene {gpus_per_scene:g}: {where} has no GPUs ({len(nodes)} nodes, "
            f"{sum(c for _, c in per_node):g} CPUs); use --gpus-per-scene 0 to train on CPUs, or add GPU nodes "
            "(`ray start --address=HEAD:6379` on a machine with a GPU declares it)")
    if gpus_per_scene > most_gpus:
        raise ClusterError(f"--gpus-per-scene {gpus_per_scene:g}: no node of {where} has that many GPUs "
                           f"(the most on one node: {most_gpus:g}); ask for at most {most_gpus:g}")
    if not any(g >= gpus_per_scene and c >= cpus_per_scene for g, c in per_node):
        raise ClusterError(f"--cpus-per-scene {cpus_per_scene:g}: no node of {where} has that many CPUs"
                           + (f" beside {gpus_per_scene:g} GPUs" if gpus_per_scene > 0 else "")
                           + f" (the most on one node: {most_cpus:g}); ask for fewer")


def shutdown() -> None:
    """Leave the cluster (a local one started by :func:`connect` stops); nothing when not connected."""
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()
