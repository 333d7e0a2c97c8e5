"""How the runs of one program are batched: a parsed, frozen `Strategy`.

A strategy is a batching form optionally followed by options, `form[+option]…`:

- "vmap": one `jax.vmap` over all S runs. Convolutions become grouped convolutions
  (feature_group_count = S), slow on XLA:CPU (BUILD_NOTES.md "Measured"), often fine on GPU.
- "unrolled": one dense per-run computation per run, all unrolled in one jitted program. On
  XLA:CPU as fast as a Python loop of single-run steps, without its dispatch; and every run's
  numerics are those of a single-run program, so results do not depend on the study size.
- "serial": "unrolled", with each run's inputs held back (`optimization_barrier`) until the
  previous run's outputs exist, so XLA runs the runs one after another instead of
  interleaving them (a single run's working set; bitwise "unrolled").
- "chunk:K": runs in chunks of K, vmapped inside a chunk and unrolled across chunks.
- "map" / "map:K": `lax.map` over runs (K runs vmapped per iteration). One loop body, so compile
  time does not grow with S; GPU only in practice (XLA:CPU convolutions inside a loop are ~80×
  slower).

Options (`conv_batching`): "+direct" computes convolutions with a tiny patch (kh·kw·C_in ≤ 27:
RGB or grey input layers) as shifted multiply-adds; "+perrun" makes every vmapped convolution one
dense convolution per run; "+bmm" batches vmapped convolutions as im2col batched matmuls; "+bf16"
computes convolutions in bfloat16 (opt-in, never chosen by "auto" because it changes the
numerics); "+eigen" is a compile option, not a routing: on CPU XLA runs convolutions with its own
(Eigen) kernels instead of YNNPACK (`programs.compile_options`).

"auto" parses to `AUTO`; `vmaptrain.autotune` resolves it to a concrete strategy by timing.

This module is pure Python (no jax): `vmaptrain.config` parses the strategy once, at validation.
"""

from __future__ import annotations

import dataclasses
import re

FORMS = ("vmap", "unrolled", "serial", "chunk", "map")
OPTIONS = ("direct", "perrun", "bmm", "bf16", "eigen")
DIRECT_PATCH_LIMIT = 27
_PATTERN = re.compile(
    r"^(vmap|unrolled|serial|chunk:[1-9][0-9]*|map|map:[1-9][0-9]*)" rf"((\+({'|'.join(OPTIONS)}))*)$"
)
_HELP = (
    "choose auto, or vmap, unrolled, serial, chunk:K, map or map:K (K ≥ 1), optionally followed by "
    "+direct, +perrun or +bmm (not both), +bf16 and +eigen"
)


@dataclasses.dataclass(frozen=True)
class Strategy:
    """A parsed strategy: `form`, the chunk size K of "chunk:K"/"map:K" (None otherwise) and the
    options in the order written. `str(strategy)` gives back the text it was parsed from."""

    form: str
    chunk: int | None = None
    options: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text) -> Strategy:
        """`text` parsed; a ValueError that lists what is allowed if it names no strategy."""
        if isinstance(text, Strategy):
            return text
        if text == "auto":
            return AUTO
        match = _PATTERN.match(text) if isinstance(text, str) else None
        options = tuple(match.group(2).split("+")[1:]) if match else ()
        if not match or len(set(options)) != len(options) or {"perrun", "bmm"} <= set(options):
            raise ValueError(f"unknown strategy '{text}'; {_HELP}")
        form, _, size = match.group(1).partition(":")
        return cls(form, int(size) if size else None, options)

    def __str__(self) -> str:
        if self.is_auto:
            return "auto"
        form = f"{self.form}:{self.chunk}" if self.chunk is not None else self.form
        return "+".join((form,) + self.options)

    @property
    def is_auto(self) -> bool:
        return self.form == "auto"

    def has(self, option: str) -> bool:
        return option in self.options

    @property
    def routed(self) -> bool:
        """Whether convolutions are routed through `conv_batching` ("+eigen" is a compile option)."""
        return any(option != "eigen" for option in self.options)

    def chunk_size(self, num_runs: int) -> int:
        """Runs per vmapped block (1: each run is its own dense computation)."""
        self._concrete()
        if self.form == "vmap":
            return num_runs
        if self.chunk is None:  # unrolled, serial, map
            return 1
        return min(self.chunk, num_runs)

    def _concrete(self) -> None:
        if self.is_auto:
            raise ValueError("strategy 'auto' must be resolved (vmaptrain.autotune) before programs are built")


AUTO = Strategy("auto")
