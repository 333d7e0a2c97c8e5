"""Orbax checkpoints of one group's stacked training state, saved atomically and restored
onto whatever device layout the resuming process has."""

from __future__ import annotations

import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read back; the message says which and what to do."""


class GroupCheckpoints:
    """Checkpoints of one group of runs: `state` (stacked RunState) + `progress` (JSON)."""

    def __init__(self, directory: str, keep: int = 2):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False, create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, progress: dict) -> None:
        tree = serialization.to_state_dict(state)
        self.manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(tree), progress=ocp.args.JsonSave(progress)),
            force=True,
        )
        self.manager.wait_until_finished()

    def restore(self, target_state, shardings=None):
        """(state, progress) of the latest checkpoint, or None when there is none.

        `target_state` fixes the tree structure, shapes and dtypes; `shardings` (a matching
        tree of jax shardings) places the arrays, so a study saved on 2 devices resumes on 1.
        """
        step = self.latest_step()
        if step is None:
            return None
        tree = serialization.to_state_dict(target_state)
        if shardings is None:
            abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), tree)
        else:
            flat = serialization.to_state_dict(shardings)
            abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(np.shape(a), a.dtype, sharding=s), tree, flat)
        try:
            restored = self.manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore())
            )
        except Exception as err:  # orbax raises many types for a damaged directory
            raise CheckpointError(
                f"checkpoint {self.directory}/{step} cannot be restored "
                f"({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                f"delete that step directory to resume from an earlier checkpoint, or rerun with --overwrite "
                f"to start the study again"
            ) from None
        state = serialization.from_state_dict(target_state, restored["state"])
        return state, dict(restored["progress"])

    def close(self) -> None:
        self.manager.close()
