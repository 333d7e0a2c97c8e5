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
"default" (the config's default) stands for the strategy measured fastest on the backend and
CPU family at hand (`CPU_DEFAULTS`; BUILD_NOTES.md "Measured"): on AMD EPYC (Zen 5)
"unrolled+direct+eigen", on Intel Xeon (AMX) and any other CPU "serial+direct+eigen" (the two are
within 10% of each other on both, and 1.4–1.6× faster than "unrolled"); on accelerators "auto".

Unrolled forms compile one copy of the step per run, so their compile time grows with the runs
in a program: `default_group_size` caps the runs per device of those forms and the study trains
in groups that reuse one compiled program.

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
    "+direct, +perrun or +bmm (not both), +bf16 and +eigen, or default (the backend's measured default)"
)
# CPU family (a word of the CPU model) → the default on it; the fallback is the one with the
# smaller working set. Accelerators: "auto".
CPU_DEFAULTS = {"AMD": "unrolled+direct+eigen"}
CPU_FALLBACK = "serial+direct+eigen"
MAX_UNROLLED_RUNS_PER_DEVICE = 8


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
        if text == "default":
            return DEFAULT
        match = _PATTERN.match(text) if isinstance(text, str) else None
        options = tuple(match.group(2).split("+")[1:]) if match else ()
        if not match or len(set(options)) != len(options) or {"perrun", "bmm"} <= set(options):
            raise ValueError(f"unknown strategy '{text}'; {_HELP}")
        form, _, size = match.group(1).partition(":")
        return cls(form, int(size) if size else None, options)

    def __str__(self) -> str:
        if self.is_auto or self.is_default:
            return self.form
        form = f"{self.form}:{self.chunk}" if self.chunk is not None else self.form
        return "+".join((form,) + self.options)

    @property
    def is_auto(self) -> bool:
        return self.form == "auto"

    @property
    def is_default(self) -> bool:
        return self.form == "default"

    def for_platform(self, platform: str, cpu_model: str | None = None) -> Strategy:
        """The "default" strategy resolved for `platform` (a concrete strategy, or "auto") and, on
        CPU, the CPU model (default: this machine's); other strategies as they are."""
        if not self.is_default:
            return self
        if platform != "cpu":
            return AUTO
        if cpu_model is None:
            from vmaptrain import machine

            cpu_model = machine.cpu_model()
        words = cpu_model.split()
        return Strategy.parse(next((v for k, v in CPU_DEFAULTS.items() if k in words), CPU_FALLBACK))

    @property
    def unrolled(self) -> bool:
        """Whether the program holds one copy of the step per run or per chunk (compile time grows
        with the runs in it)."""
        return self.form in ("unrolled", "serial", "chunk")

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
        if self.is_auto or self.is_default:
            raise ValueError(f"strategy '{self}' must be resolved (vmaptrain.autotune) before programs are built")


AUTO = Strategy("auto")
DEFAULT = Strategy("default")


def default_group_size(num_runs: int, strategy: Strategy, devices: int) -> int:
    """Runs per program when the config leaves it open (group_size 0): all of them, except that
    unrolled forms take at most `MAX_UNROLLED_RUNS_PER_DEVICE` per device, in equal groups when
    a divisor of the run count allows (one program size, compiled once)."""
    cap = MAX_UNROLLED_RUNS_PER_DEVICE * devices
    if not strategy.unrolled or num_runs <= cap:
        return num_runs
    for size in range(cap, cap // 2 - 1, -devices):  # the largest equal split near the cap
        if num_runs % size == 0:
            return size
    return cap
