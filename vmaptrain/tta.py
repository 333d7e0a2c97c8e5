"""Test-time augmentation: a prediction is the weighted mean of the logits of several views.

A view is (weight, mirror, pad, dy, dx, fill mode): pad the (normalised) image by `pad`, cut the
H×W window at offset (dy, dx), mirror it if asked. Named sets:

  none        the image itself
  flip        image and mirror, ½ each
  airbench    airbench's tta_level=2: ½ · flip, plus ½ · the mean of two 1-pixel reflect-padded
              translations (offsets (0,0) and (2,2)), each mirror-averaged — 6 views
  crop:P:S    every window of a P-pixel zero pad at stride S (P divisible by S), equal weights;
              crop25 = crop:4:2 and crop81 = crop:4:1 (Summers & Dinneen)
  flip_crop:P:S / flip_crop25 / flip_crop81   each window and its mirror

Zero padding is in normalised space (the dataset's mean colour), as image-space transforms on a
normalised test batch are.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

ALIASES = {"crop25": "crop:4:2", "crop81": "crop:4:1", "flip_crop25": "flip_crop:4:2", "flip_crop81": "flip_crop:4:1"}
NAMES = ("none", "flip", "airbench", "crop:P:S", "flip_crop:P:S") + tuple(ALIASES)


@dataclasses.dataclass(frozen=True)
class View:
    weight: float
    mirror: bool = False
    pad: int = 0
    dy: int = 0
    dx: int = 0
    mode: str = "constant"


def views(name: str) -> tuple[View, ...]:
    """The views of a named set; ValueError for an unknown or malformed name."""
    name = ALIASES.get(name, name)
    if name == "none":
        return (View(1.0),)
    if name == "flip":
        return (View(0.5), View(0.5, mirror=True))
    if name == "airbench":
        shifted = tuple(View(0.125, m, 1, d, d, "reflect") for d in (0, 2) for m in (False, True))
        return (View(0.25), View(0.25, mirror=True)) + shifted
    kind, _, rest = name.partition(":")
    if kind in ("crop", "flip_crop"):
        try:
            pad, stride = (int(v) for v in rest.split(":"))
        except ValueError:
            pad = stride = -1
        if pad < 1 or stride < 1 or pad % stride:
            raise ValueError(f"tta '{name}': expected {kind}:PAD:STRIDE with PAD ≥ 1 divisible by STRIDE ≥ 1")
        offsets = range(0, 2 * pad + 1, stride)
        mirrors = (False, True) if kind == "flip_crop" else (False,)
        count = len(offsets) ** 2 * len(mirrors)
        return tuple(View(1.0 / count, m, pad, dy, dx) for dy in offsets for dx in offsets for m in mirrors)
    raise ValueError(f"unknown tta '{name}'; choose from {', '.join(NAMES)}")


def check(name: str, height: int, width: int) -> None:
    """ValueError if a view set cannot apply to height×width images."""
    for view in views(name):
        if view.mode == "reflect" and view.pad >= min(height, width):
            raise ValueError(f"tta '{name}' pads by {view.pad}, which needs images larger than that")


def view_images(view: View, images: jax.Array) -> jax.Array:
    if view.pad:
        padded = jnp.pad(images, ((0, 0), (view.pad, view.pad), (view.pad, view.pad), (0, 0)), mode=view.mode)
        images = padded[:, view.dy : view.dy + images.shape[1], view.dx : view.dx + images.shape[2]]
    return images[:, :, ::-1] if view.mirror else images


def tta_logits(logits_fn, images: jax.Array, name: str) -> jax.Array:
    """Σ weight · logits_fn(view) over the views of `name` (logits_fn: images → logits)."""
    total = None
    for view in views(name):
        logits = view.weight * logits_fn(view_images(view, images))
        total = logits if total is None else total + logits
    return total
