"""Study key → run keys → named streams.

A run's three sources of randomness (model init, data order, augmentation) each come from
their own integer seed, so a study can vary any subset and fix the rest (Summers & Dinneen
2021). Every key is derived with `fold_in`, never `split(key, n)`, so run i's keys depend only
on (study seed, run i's stream seeds) — not on how many runs share the program or their order.

    study_key            = key(study_seed)
    stream key of run r  = fold_in(fold_in(study_key, seed_r[stream]), STREAM_TAG[stream])
    per-epoch / per-step = fold_in(stream key, epoch or step)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

STREAMS = ("init", "order", "aug")
# Distinct tags keep streams independent even when two streams share an integer seed.
STREAM_TAG = {"init": 0x1A17, "order": 0x0DE2, "aug": 0xA06}


@dataclasses.dataclass(frozen=True)
class RunSeeds:
    """The integer seed of each stream of one run."""

    init: int
    order: int
    aug: int

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def parse_vary(vary: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """'init,order' → ('init', 'order'); 'all' → every stream; 'none'/'' → ()."""
    if isinstance(vary, str):
        text = vary.strip().lower()
        if text == "all":
            return STREAMS
        if text in ("", "none"):
            return ()
        names = tuple(part.strip() for part in text.split(",") if part.strip())
    else:
        names = tuple(vary)
    unknown = [name for name in names if name not in STREAMS]
    if unknown:
        raise ValueError(f"vary: unknown stream(s) {unknown}; choose from {', '.join(STREAMS)} or 'all'")
    if len(set(names)) != len(names):
        raise ValueError(f"vary: stream listed twice in {list(names)}")
    return tuple(name for name in STREAMS if name in names)


def run_seeds(run_index: int, vary: tuple[str, ...], fixed_seed: int) -> RunSeeds:
    """Varied streams take the run's index as their seed; fixed streams share `fixed_seed`."""
    return RunSeeds(**{s: (run_index if s in vary else fixed_seed) for s in STREAMS})


def stream_key(study_seed: int, seed: int, stream: str) -> jax.Array:
    """The typed key of one stream; depends only on (study_seed, seed, stream)."""
    return stream_key_traced(study_seed, seed, STREAM_TAG[stream])


def stream_key_traced(study_seed, seed, tag) -> jax.Array:
    run_key = jax.random.fold_in(jax.random.key(study_seed), seed)
    return jax.random.fold_in(run_key, tag)


def wrap(key_data: jax.Array) -> jax.Array:
    """uint32 key data → typed threefry key (inverse of `jax.random.key_data`)."""
    return jax.random.wrap_key_data(jnp.asarray(key_data, jnp.uint32))
