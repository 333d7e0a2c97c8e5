"""Pure image-batch augmentations: (key, images) → images, with every bit of randomness
drawn from the explicit key (never from global state), so each run's augmentation stream is
reproducible and independent of how many runs share a program.

All functions take a batch [B, H, W, C] of any dtype and return the same shape and dtype;
they are jit-able (sizes such as `pad` are static Python ints) and vmap-able over a leading
run axis of keys. They work in pixel space, before normalisation, so "zero" fill is black.

Synopsis (one run, inside the jitted train step):

    cfg = AugmentConfig(flip="alternating", translate=2, cutout=12)
    step_key = jax.random.fold_in(run_key, step)
    images = augment_batch(step_key, run_key, images, indices, epoch, cfg, fill)
"""

import dataclasses

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

FLIP_MODES = ("none", "random", "alternating")
TRANSLATE_MODES = ("zero", "reflect")

# fold_in tags for the per-step subkeys of augment_batch.
FLIP_TAG, TRANSLATE_TAG, CUTOUT_TAG = 0, 1, 2
# Tag for the alternating-flip base key, derived from the run key. It is above 2**31 so it can
# never equal a step number, which keeps it distinct from step_key = fold_in(run_key, step).
ALTERNATING_FLIP_TAG = 0xA17F11B5


def _mirror(images: jax.Array) -> jax.Array:
    return images[:, :, ::-1, :]


def _where_per_image(mask: jax.Array, on: jax.Array, off: jax.Array) -> jax.Array:
    return jnp.where(mask[:, None, None, None], on, off)


def random_flip(key: ArrayLike, images: ArrayLike) -> jax.Array:
    """Mirror each image horizontally (along W) with probability 1/2, independently."""
    images = jnp.asarray(images)
    flip = jax.random.bernoulli(key, 0.5, (images.shape[0],))
    return _where_per_image(flip, _mirror(images), images)


def alternating_flip(key: ArrayLike, images: ArrayLike, indices: ArrayLike, epoch: ArrayLike) -> jax.Array:
    """airbench's derandomised flip: each example alternates orientation from epoch to epoch.

    `indices[b]` is image b's index in the dataset. Its base coin bernoulli(fold_in(key, index))
    depends only on (key, index), not on its position in the batch; it is flipped where
    base XOR (epoch is odd), so every image is seen both ways in any two consecutive epochs.
    """
    images = jnp.asarray(images)
    indices = jnp.asarray(indices)
    base = jax.vmap(lambda i: jax.random.bernoulli(jax.random.fold_in(key, i), 0.5))(indices)
    flip = jnp.logical_xor(base, jnp.asarray(epoch) % 2 == 1)
    return _where_per_image(flip, _mirror(images), images)


def translate(key: ArrayLike, images: ArrayLike, pad: int, mode: str = "zero") -> jax.Array:
    """Shift each image by an independent (dy, dx), each uniform in [-pad, pad].

    The image is padded by `pad` on every side ("zero": value 0, i.e. black in pixel space;
    "reflect": mirrored without repeating the edge) and an H×W window is cut at a random
    offset — the pad-and-crop of airbench and ffcv's RandomTranslate.
    """
    _check_translate(pad, mode)
    images = jnp.asarray(images)
    if pad == 0:
        return images
    batch, height, width, _ = images.shape
    if mode == "reflect" and pad >= min(height, width):
        raise ValueError(
            f"translate: reflect padding {pad} needs images larger than {pad} pixels, got {height}×{width}"
        )
    padding = ((0, 0), (pad, pad), (pad, pad), (0, 0))
    padded = jnp.pad(images, padding, mode="constant" if mode == "zero" else "reflect")
    offsets = jax.random.randint(key, (batch, 2), 0, 2 * pad + 1)

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (height, width, image.shape[2]))

    return jax.vmap(crop)(padded, offsets)


def cutout(key: ArrayLike, images: ArrayLike, size: int, fill: ArrayLike) -> jax.Array:
    """Set one size×size square per image, placed uniformly and fully inside it, to `fill` [C].

    `fill` is cast to the images' dtype; for integer images it is rounded first (pass the
    dataset mean colour in pixel units).
    """
    images = jnp.asarray(images)
    batch, height, width, channels = images.shape
    _check_cutout(size, height, width)
    if size == 0:
        return images
    fill = jnp.broadcast_to(jnp.asarray(fill), (channels,))
    if jnp.issubdtype(images.dtype, jnp.integer):
        fill = jnp.round(fill)
    fill = fill.astype(images.dtype)
    top_key, left_key = jax.random.split(key)
    top = jax.random.randint(top_key, (batch, 1, 1), 0, height - size + 1)
    left = jax.random.randint(left_key, (batch, 1, 1), 0, width - size + 1)
    rows = jnp.arange(height)[None, :, None]
    cols = jnp.arange(width)[None, None, :]
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return jnp.where(inside[..., None], fill, images)


def _check_translate(pad, mode) -> None:
    if not isinstance(pad, int) or isinstance(pad, bool) or pad < 0:
        raise ValueError(f"translate: pad must be a non-negative int, got {pad!r}")
    if mode not in TRANSLATE_MODES:
        raise ValueError(f"translate: mode must be one of {', '.join(TRANSLATE_MODES)}, got {mode!r}")


def _check_cutout(size, height: int | None = None, width: int | None = None) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"cutout: size must be a non-negative int, got {size!r}")
    if height is not None and size > min(height, width):
        raise ValueError(f"cutout: a {size}×{size} square does not fit inside {height}×{width} images")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations a run uses; hashable, so it can be a static jit argument.

    flip: "none" | "random" (p = 1/2 each step) | "alternating" (airbench; needs dataset indices)
    translate: max shift in pixels (0 = off); translate_mode: "zero" (black) | "reflect"
    cutout: side of the square (0 = off)
    """

    flip: str = "none"
    translate: int = 0
    translate_mode: str = "zero"
    cutout: int = 0

    def __post_init__(self):
        if self.flip not in FLIP_MODES:
            raise ValueError(f"augment: flip must be one of {', '.join(FLIP_MODES)}, got {self.flip!r}")
        _check_translate(self.translate, self.translate_mode)
        _check_cutout(self.cutout)

    def check_image_size(self, height: int, width: int) -> None:
        """Raise ValueError if these augmentations cannot apply to height×width images."""
        _check_cutout(self.cutout, height, width)
        if self.translate_mode == "reflect" and 0 < min(height, width) <= self.translate:
            raise ValueError(
                f"augment: reflect translate by {self.translate} needs images larger than "
                f"{self.translate} pixels, got {height}×{width}"
            )


def augment_batch(
    step_key: ArrayLike,
    run_key: ArrayLike,
    images: ArrayLike,
    indices: ArrayLike,
    epoch: ArrayLike,
    cfg: AugmentConfig,
    fill: ArrayLike,
) -> jax.Array:
    """Apply flip → translate → cutout to one run's batch, as `cfg` says.

    Args:
      step_key: this step's augmentation key; flip ("random"), translate and cutout use
        fold_in(step_key, FLIP_TAG / TRANSLATE_TAG / CUTOUT_TAG).
      run_key: the run's augmentation-stream key; only "alternating" flip uses it, through
        fold_in(run_key, ALTERNATING_FLIP_TAG), so each example's base orientation is fixed
        for the whole run.
      images: [B, H, W, C] in pixel space (any dtype; returned in the same dtype).
      indices: int [B], each image's index in the training set (for "alternating").
      epoch: int scalar, may be traced (for "alternating").
      cfg: static `AugmentConfig`.
      fill: [C] cutout colour in pixel units (e.g. the dataset mean, rounded for uint8).
    """
    images = jnp.asarray(images)
    cfg.check_image_size(images.shape[1], images.shape[2])
    if cfg.flip == "random":
        images = random_flip(jax.random.fold_in(step_key, FLIP_TAG), images)
    elif cfg.flip == "alternating":
        base_key = jax.random.fold_in(run_key, ALTERNATING_FLIP_TAG)
        images = alternating_flip(base_key, images, indices, epoch)
    if cfg.translate:
        images = translate(jax.random.fold_in(step_key, TRANSLATE_TAG), images, cfg.translate, cfg.translate_mode)
    if cfg.cutout:
        images = cutout(jax.random.fold_in(step_key, CUTOUT_TAG), images, cfg.cutout, fill)
    return images
