"""vmaptrain.augment: each transform's invariants, determinism, jit and vmap over runs."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vmaptrain.augment import AugmentConfig, alternating_flip, augment_batch, cutout, random_flip, translate

KEY = jax.random.key(0)
OTHER_KEY = jax.random.key(1)


def distinct_images(batch=64, height=6, width=7, channels=2, dtype=np.float32):
    """Images with no repeated pixel inside an image (up to 250 values) and none below 1,
    so a mirror or shift is always visible and a 0 can only be padding."""
    values = np.arange(1, batch * height * width * channels + 1) % 250 + 1
    return jnp.asarray(values.reshape(batch, height, width, channels).astype(dtype))


def flipped_mask(images, out):
    """Per image: True if mirrored, False if unchanged (asserting it is one of the two)."""
    images, out = np.asarray(images), np.asarray(out)
    same = (out == images).all(axis=(1, 2, 3))
    mirrored = (out == images[:, :, ::-1]).all(axis=(1, 2, 3))
    assert np.all(same ^ mirrored), "every image must be exactly itself or its mirror"
    return mirrored


# --- flips -----------------------------------------------------------------------------------


def test_random_flip_is_exact_mirror_deterministic_and_about_half():
    images = distinct_images(batch=400, height=3, width=4, channels=1)
    out = random_flip(KEY, images)
    mask = flipped_mask(images, out)
    assert 150 < mask.sum() < 250
    assert np.array_equal(random_flip(KEY, images), out)
    assert not np.array_equal(flipped_mask(images, random_flip(OTHER_KEY, images)), mask)


def test_alternating_flip_alternates_and_ignores_batch_position():
    images = distinct_images(batch=50, height=3, width=4, channels=1)
    indices = jnp.arange(1000, 1050)
    masks = [flipped_mask(images, alternating_flip(KEY, images, indices, epoch)) for epoch in range(4)]
    assert 10 < masks[0].sum() < 40
    assert np.array_equal(masks[1], ~masks[0]) and np.array_equal(masks[3], ~masks[0])
    assert np.array_equal(masks[2], masks[0])
    # The same dataset index gets the same coin wherever it sits in the batch.
    order = np.random.default_rng(0).permutation(50)
    shuffled = flipped_mask(images[order], alternating_flip(KEY, images[order], indices[order], 0))
    assert np.array_equal(shuffled, masks[0][order])
    other = flipped_mask(images, alternating_flip(OTHER_KEY, images, indices, 0))
    assert not np.array_equal(other, masks[0])


def test_alternating_flip_with_traced_epoch():
    images = distinct_images(batch=16, height=3, width=4, channels=1)
    indices = jnp.arange(16)
    jitted = jax.jit(alternating_flip)
    for epoch in (0, 1):
        assert np.array_equal(jitted(KEY, images, indices, epoch), alternating_flip(KEY, images, indices, epoch))


# --- translate -------------------------------------------------------------------------------


def recover_shift(image, out, pad, mode):
    """The unique (dy, dx) with out = image shifted, for padded-then-cropped images."""
    height, width = image.shape[:2]
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="constant" if mode == "zero" else "reflect")
    matches = [
        (dy, dx)
        for dy, dx in itertools.product(range(-pad, pad + 1), repeat=2)
        if np.array_equal(padded[pad - dy : pad - dy + height, pad - dx : pad - dx + width], out)
    ]
    assert len(matches) == 1, f"output is not a single shift of the input: {matches}"
    return matches[0]


@pytest.mark.parametrize("mode", ["zero", "reflect"])
def test_translate_shifts_within_range_and_preserves_content(mode):
    pad = 2
    images = distinct_images(batch=300)
    out = np.asarray(translate(KEY, images, pad, mode))
    assert out.shape == images.shape and out.dtype == images.dtype
    shifts = [recover_shift(np.asarray(images[b]), out[b], pad, mode) for b in range(len(out))]
    assert set(shifts) == set(itertools.product(range(-pad, pad + 1), repeat=2))  # all 25 offsets occur
    # Content in the overlap is the input's; outside it is black (zero mode).
    dy, dx = shifts[0]
    height, width = images.shape[1:3]
    src = np.asarray(images[0])[max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)]
    dst = out[0][max(0, dy) : height - max(0, -dy), max(0, dx) : width - max(0, -dx)]
    assert np.array_equal(src, dst)
    if mode == "zero":
        assert (out[0] == 0).sum() == out[0].size - dst.size


def test_translate_pad_zero_is_identity_and_keys_matter():
    images = distinct_images(batch=8, dtype=np.uint8)
    assert np.array_equal(translate(KEY, images, 0), images)
    assert np.array_equal(translate(KEY, images, 1), translate(KEY, images, 1))
    assert not np.array_equal(translate(KEY, images, 1), translate(OTHER_KEY, images, 1))
    assert translate(KEY, images, 1).dtype == jnp.uint8


# --- cutout ----------------------------------------------------------------------------------


def test_cutout_square_is_inside_exact_and_filled():
    size, height, width = 3, 6, 7
    images = distinct_images(batch=200, height=height, width=width, channels=2, dtype=np.uint8)
    fill = jnp.array([0.4, 251.6])  # uint8 images get the rounded colour (0, 252); no pixel has it
    out = np.asarray(cutout(KEY, images, size, fill))
    assert out.dtype == np.uint8
    corners = set()
    for b in range(len(out)):
        changed = (out[b] != np.asarray(images[b])).any(axis=-1)
        rows, cols = np.nonzero(changed)
        assert changed.sum() == size * size
        top, left = rows.min(), cols.min()
        assert rows.max() - top == size - 1 and cols.max() - left == size - 1  # one solid square
        assert 0 <= top <= height - size and 0 <= left <= width - size
        assert np.array_equal(out[b][changed], np.tile([0, 252], (size * size, 1)))
        corners.add((top, left))
    assert len(corners) == (height - size + 1) * (width - size + 1)  # every placement occurs
    assert np.array_equal(cutout(KEY, images, size, fill), out)
    assert not np.array_equal(cutout(OTHER_KEY, images, size, fill), out)
    assert np.array_equal(cutout(KEY, images, 0, fill), images)


def test_cutout_larger_than_image_is_refused():
    with pytest.raises(ValueError, match="does not fit inside 6×7"):
        cutout(KEY, distinct_images(batch=2), 7, jnp.zeros(2))


# --- config and the combined pipeline ---------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(flip="sometimes"), "flip must be one of none, random, alternating"),
        (dict(translate=-1), "pad must be a non-negative int"),
        (dict(translate=1.5), "pad must be a non-negative int"),
        (dict(translate_mode="wrap"), "mode must be one of zero, reflect"),
        (dict(cutout=-2), "size must be a non-negative int"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AugmentConfig(**kwargs)


def test_config_checks_image_size():
    images = distinct_images(batch=2, height=8, width=8, dtype=np.uint8)
    with pytest.raises(ValueError, match="12×12 square does not fit inside 8×8"):
        augment_batch(KEY, KEY, images, jnp.arange(2), 0, AugmentConfig(cutout=12), jnp.zeros(2))
    with pytest.raises(ValueError, match="reflect translate by 8"):
        augment_batch(
            KEY, KEY, images, jnp.arange(2), 0, AugmentConfig(translate=8, translate_mode="reflect"), jnp.zeros(2)
        )


def test_augment_batch_none_is_identity():
    images = distinct_images(batch=4, dtype=np.uint8)
    assert np.array_equal(augment_batch(KEY, KEY, images, jnp.arange(4), 3, AugmentConfig(), jnp.zeros(2)), images)


def test_augment_batch_jit_matches_eager_and_composes_in_order():
    cfg = AugmentConfig(flip="random", translate=2, cutout=3)
    images = distinct_images(batch=32, height=8, width=8, channels=3, dtype=np.uint8)
    indices, fill = jnp.arange(32), jnp.array([0, 0, 0])
    eager = augment_batch(KEY, OTHER_KEY, images, indices, 0, cfg, fill)
    jitted = jax.jit(augment_batch, static_argnames="cfg")(KEY, OTHER_KEY, images, indices, 0, cfg=cfg, fill=fill)
    assert jitted.dtype == jnp.uint8 and np.array_equal(eager, jitted)
    # flip → translate → cutout, each from its own subkey of the step key.
    expected = random_flip(jax.random.fold_in(KEY, 0), images)
    expected = translate(jax.random.fold_in(KEY, 1), expected, 2)
    expected = cutout(jax.random.fold_in(KEY, 2), expected, 3, fill)
    assert np.array_equal(eager, expected)
    assert not np.array_equal(augment_batch(OTHER_KEY, OTHER_KEY, images, indices, 0, cfg, fill), eager)


def test_augment_batch_alternating_uses_run_key_only():
    cfg = AugmentConfig(flip="alternating")
    images = distinct_images(batch=32, height=3, width=4, channels=1)
    indices, fill = jnp.arange(32), jnp.zeros(1)
    epoch0 = augment_batch(KEY, OTHER_KEY, images, indices, 0, cfg, fill)
    # A different step key leaves the alternating flip unchanged; the next epoch flips the rest.
    assert np.array_equal(augment_batch(jax.random.key(5), OTHER_KEY, images, indices, 0, cfg, fill), epoch0)
    epoch1 = augment_batch(KEY, OTHER_KEY, images, indices, 1, cfg, fill)
    assert np.array_equal(flipped_mask(images, epoch1), ~flipped_mask(images, epoch0))


def test_augment_batch_vmaps_over_runs():
    cfg = AugmentConfig(flip="alternating", translate=1, cutout=2)
    runs = 3
    images = distinct_images(batch=16, height=6, width=6, channels=3, dtype=np.uint8)
    step_keys = jax.random.split(KEY, runs)
    run_keys = jax.random.split(OTHER_KEY, runs)
    per_run_images = jnp.stack([images] * runs)
    indices, fill = jnp.arange(16), jnp.array([9, 9, 9])

    def one_run(step_key, run_key, run_images, epoch):
        return augment_batch(step_key, run_key, run_images, indices, epoch, cfg, fill)

    epochs = jnp.array([0, 1, 2])
    batched = jax.jit(jax.vmap(one_run))(step_keys, run_keys, per_run_images, epochs)
    assert batched.shape == (runs, *images.shape) and batched.dtype == jnp.uint8
    for r in range(runs):
        assert np.array_equal(batched[r], one_run(step_keys[r], run_keys[r], images, int(epochs[r])))
    assert not np.array_equal(batched[0], batched[2])  # runs get their own streams
