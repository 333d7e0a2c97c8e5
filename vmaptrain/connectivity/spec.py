"""Permutation specs: which axis of which tensor each hidden-unit permutation acts on.

A *free* permutation is an index array `perm` (perm[i] = unit of B matched to unit i of A).
An axis carries a *label*: a tuple of free permutation names whose index arrays are
concatenated with offsets. Most labels have one name; ResNet-14's zero-padding shortcut
needs more: the channels a stage inherits from the previous stream must keep that stream's
permutation (the shortcut copies them into the first channels), and only the newly padded
channels may be permuted freely among themselves. So stage s's stream is
("S0", "S1", …, "Ss").

Specs cover `params` *and* `batch_stats`: permuting BN running statistics with their channel
is what keeps the permuted network the same function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax
import jax.numpy as jnp
import numpy as np

from vmaptrain.connectivity.errors import ConnectivityError

Label = tuple  # tuple[str, ...]: free permutation names, concatenated in order


@dataclasses.dataclass(frozen=True)
class PermSpec:
    sizes: dict  # free permutation name → number of units
    axes: dict  # flat key ('params', ..., 'kernel') → tuple of Label | None per axis
    sites: dict  # module path 'a/b' → Label of its output channels (activation matching)
    preact: tuple  # module paths of conv/dense outputs that REPAIR corrects (no classifier)
    bn: tuple  # module paths of BatchNorm layers

    def offsets(self, label: Label) -> list[tuple[str, int, int]]:
        """[(name, offset, size)] of the free permutations making up `label`."""
        out, start = [], 0
        for name in label:
            out.append((name, start, self.sizes[name]))
            start += self.sizes[name]
        return out

    def full_index(self, label: Label, perms: dict):
        """The gather index of an axis labelled `label` (works on traced perms)."""
        parts = [jnp.asarray(perms[name]) + offset for name, offset, _ in self.offsets(label)]
        return parts[0] if len(parts) == 1 else jnp.concatenate(parts)

    def identity(self) -> dict:
        return {name: np.arange(n, dtype=np.int32) for name, n in self.sizes.items()}


class _Builder:
    def __init__(self, variables):
        self.flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables))
        self.sizes, self.axes, self.sites, self.preact, self.bn = {}, {}, {}, [], []

    def has(self, *key) -> bool:
        return tuple(key) in self.flat

    def shape(self, *key):
        return self.flat[tuple(key)].shape

    def free(self, name: str, n: int) -> None:
        if n < 1:
            raise ConnectivityError(f"permutation {name} would have {n} units")
        self.sizes[name] = int(n)

    def conv(self, path: str, p_in, p_out, *, preact: bool = True) -> None:
        key = ("params", *path.split("/"))
        self.axes[key + ("kernel",)] = (None,) * (len(self.shape(*key, "kernel")) - 2) + (p_in, p_out)
        if self.has(*key, "bias"):
            self.axes[key + ("bias",)] = (p_out,)
        if preact:
            self.preact.append(path)

    def dense(self, path: str, p_in, p_out, *, preact: bool = True) -> None:
        self.conv(path, p_in, p_out, preact=preact)

    def norm(self, path: str, p) -> None:
        parts = tuple(path.split("/"))
        for name in ("scale", "bias"):
            if self.has("params", *parts, name):
                self.axes[("params", *parts, name)] = (p,)
        for name in ("mean", "var"):
            if self.has("batch_stats", *parts, name):
                self.axes[("batch_stats", *parts, name)] = (p,)
        self.bn.append(path)

    def site(self, path: str, label) -> None:
        self.sites[path] = label

    def build(self) -> PermSpec:
        missing = sorted("/".join(k) for k in self.flat if k not in self.axes)
        if missing:
            raise ConnectivityError(f"permutation spec leaves tensors unlisted: {', '.join(missing)}")
        spec = PermSpec(self.sizes, self.axes, self.sites, tuple(self.preact), tuple(self.bn))
        for key, labels in self.axes.items():
            for axis, label in enumerate(labels):
                if label is not None:
                    n = sum(size for _, _, size in spec.offsets(label))
                    if n != self.flat[key].shape[axis]:
                        raise ConnectivityError(
                            f"spec of {'/'.join(key)} axis {axis}: permutation covers {n} "
                            f"units, tensor has {self.flat[key].shape[axis]}"
                        )
        return spec


def _small_cnn(b: _Builder) -> None:
    prev = None
    for i in range(3):
        name = f"P{i}"
        b.free(name, b.shape("params", f"conv{i}", "kernel")[-1])
        b.conv(f"conv{i}", prev, (name,))
        b.norm(f"bn{i}", (name,))
        b.site(f"bn{i}", (name,))
        prev = (name,)
    b.dense("head", prev, None, preact=False)


def _resnet14_sd(b: _Builder) -> None:
    b.free("S0", b.shape("params", "stem_conv", "kernel")[-1])
    stream = ("S0",)
    b.conv("stem_conv", None, stream)
    b.norm("stem_bn", stream)
    width = b.sizes["S0"]
    for stage in range(3):
        for block in range(2):
            name = f"stage{stage}_block{block}"
            channels = b.shape("params", name, "conv1", "kernel")[-1]
            incoming = stream
            if channels > width:  # zero-padded channels: a new free block of the stream
                b.free(f"S{stage}", channels - width)
                stream, width = stream + (f"S{stage}",), channels
            inner = (f"{name}_inner",)
            b.free(inner[0], channels)
            b.conv(f"{name}/conv1", incoming, inner)
            b.norm(f"{name}/bn1", inner)
            b.conv(f"{name}/conv2", inner, stream)
            b.norm(f"{name}/bn2", stream)
            if b.has("params", name, "bn_shortcut", "scale"):
                b.norm(f"{name}/bn_shortcut", incoming)
            b.site(f"{name}/bn1", inner)
        b.site(name, stream)  # the stage output (post-add, post-ReLU), as REPAIR's ResNet-20
    b.dense("head", stream, None, preact=False)


def _resnet9_paper(b: _Builder) -> None:
    def conv_bn(path, p_in, p_out):
        b.conv(f"{path}/conv", p_in, p_out)
        b.norm(f"{path}/bn", p_out)

    def fresh(name, path):
        b.free(name, b.shape("params", *path.split("/"), "conv", "kernel")[-1])
        return (name,)

    prep = fresh("prep", "prep")
    conv_bn("prep", None, prep)
    b.site("prep/bn", prep)
    stream = fresh("S1", "down")
    conv_bn("down", prep, stream)
    for res, widen in (("res1", "widen"), ("res2", None)):
        inner = fresh(f"{res}_inner", f"{res}/conv_bn1")
        conv_bn(f"{res}/conv_bn1", stream, inner)
        conv_bn(f"{res}/conv_bn2", inner, stream)
        b.site(f"{res}/conv_bn1/bn", inner)
        b.site(res, stream)  # the post-add stream
        if widen:
            new = fresh("S2", widen)
            conv_bn(widen, stream, new)
            stream = new
    narrow = fresh("narrow", "narrow")
    conv_bn("narrow", stream, narrow)
    b.site("narrow/bn", narrow)
    b.dense("head", narrow, None, preact=False)


def _airbench94(b: _Builder) -> None:
    # The whitening conv is a constant of the program: its channels stay in place.
    b.axes[("params", "whiten", "bias")] = (None,)
    prev = None
    for group in (1, 2, 3):
        for conv, norm in (("conv1", "norm1"), ("conv2", "norm2")):
            path = f"group{group}"
            name = f"G{group}_{conv}"
            b.free(name, b.shape("params", path, conv, "kernel")[-1])
            b.conv(f"{path}/{conv}", prev, (name,))
            b.norm(f"{path}/{norm}", (name,))
            b.site(f"{path}/{norm}", (name,))
            prev = (name,)
    b.dense("head", prev, None, preact=False)


SPEC_BUILDERS: dict[str, Callable[[_Builder], None]] = {
    "Airbench94": _airbench94,
    "SmallCNN": _small_cnn,
    "ResNet14SD": _resnet14_sd,
    "ResNet9Paper": _resnet9_paper,
}


def register_spec(model_class_name: str, builder: Callable) -> None:
    """Add a spec for another model class; `builder(b)` calls b.free/conv/dense/norm/site."""
    SPEC_BUILDERS[model_class_name] = builder


def spec_for(model, variables) -> PermSpec:
    """The permutation spec of `model` (its tensor shapes taken from `variables`)."""
    name = type(model).__name__
    if name not in SPEC_BUILDERS:
        raise ConnectivityError(f"no permutation spec for model {name}; known: {', '.join(sorted(SPEC_BUILDERS))}")
    builder = _Builder(variables)
    try:
        SPEC_BUILDERS[name](builder)
    except KeyError as err:
        raise ConnectivityError(f"model {name}'s variables do not have the expected layout (missing {err})") from None
    return builder.build()


def permute(spec: PermSpec, variables, perms: dict, *, skip: tuple | None = None):
    """B's variables with every labelled axis gathered by its permutation (pure; vmap-able).

    `skip=(key, axis)` leaves that one axis unpermuted (weight matching's inner loop).
    """
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables))
    out = {}
    for key, leaf in flat.items():
        for axis, label in enumerate(spec.axes.get(key, ())):
            if label is not None and (key, axis) != skip:
                leaf = jnp.take(leaf, spec.full_index(label, perms), axis=axis)
        out[key] = leaf
    return flax.traverse_util.unflatten_dict(out)


def random_perms(spec: PermSpec, rng: np.random.Generator) -> dict:
    return {name: rng.permutation(n).astype(np.int32) for name, n in spec.sizes.items()}
