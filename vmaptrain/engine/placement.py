"""The seed axis over devices and processes.

Runs are split into contiguous blocks, one per device of a 1-D mesh with axis "seed"; every
program is a `shard_map` whose body is the per-device strategy (`seed_axis.map_runs`), so a
run never talks to another: the compiled program holds no collective (tests check the HLO).
Multi-process studies call `initialize` first; each process builds only its own runs.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "seed"
COLLECTIVES = ("all-reduce", "all-gather", "all-to-all", "collective-permute", "reduce-scatter")


def initialize(coordinator: str | None, num_processes: int | None, process_id: int | None) -> None:
    """Join a multi-process study (flags or JAX_COORDINATOR_ADDRESS/… env vars). No-op alone."""
    coordinator = coordinator or os.environ.get("VMAPTRAIN_COORDINATOR")
    if not coordinator:
        if (num_processes or 1) != 1 or (process_id or 0) != 0:
            raise ValueError(
                "a process count or id was given without a coordinator address "
                "(--coordinator_address or VMAPTRAIN_COORDINATOR)"
            )
        return
    num_processes = num_processes if num_processes is not None else int(os.environ["VMAPTRAIN_NUM_PROCESSES"])
    process_id = process_id if process_id is not None else int(os.environ["VMAPTRAIN_PROCESS_ID"])
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ValueError(f"process id {process_id} is not in 0..{num_processes - 1}")
    if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS", "") == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)


def seed_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), (AXIS,))


def check_divisible(num_runs: int, mesh: Mesh, what: str) -> None:
    devices = mesh.devices.size
    if num_runs % devices:
        raise ValueError(
            f"{what} ({num_runs}) must be a multiple of the device count ({devices}) so every device trains whole runs"
        )


def local_run_slice(mesh: Mesh, num_runs: int) -> slice:
    """The contiguous block of runs whose shards live in this process."""
    sharding = NamedSharding(mesh, P(AXIS))
    starts = sorted(idx[0].start or 0 for idx in sharding.addressable_devices_indices_map((num_runs,)).values())
    per_device = num_runs // mesh.devices.size
    return slice(starts[0], starts[-1] + per_device)


def put_runs(mesh: Mesh, tree, num_runs: int):
    """Host pytree of this process's runs (leading axis) → global arrays sharded over runs."""
    sharding = NamedSharding(mesh, P(AXIS))
    return jax.tree.map(
        lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a), (num_runs,) + np.shape(a)[1:]), tree
    )


def put_replicated(mesh: Mesh, tree):
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), tree)


def local_runs(tree):
    """Global run-sharded arrays → this process's runs as host numpy arrays, in run order."""

    def gather(array):
        shards = sorted(array.addressable_shards, key=lambda s: s.index[0].start or 0)
        unique, seen = [], set()
        for shard in shards:
            start = shard.index[0].start or 0
            if start not in seen:
                seen.add(start)
                unique.append(np.asarray(shard.data))
        return np.concatenate(unique)

    return jax.tree.map(gather, tree)


def collectives_in(hlo_text: str) -> list[str]:
    return [op for op in COLLECTIVES if op in hlo_text]
