import jax.numpy as jnp
import numpy as np
import pytest

from vmaptrain import tta
from vmaptrain.config import StudyConfig, StudyError

COUNTS = {
    "none": 1,
    "flip": 2,
    "airbench": 6,
    "crop25": 25,
    "crop81": 81,
    "flip_crop25": 50,
    "flip_crop81": 162,
    "crop:1:1": 9,
    "flip_crop:2:2": 18,
}


@pytest.mark.parametrize("name, count", sorted(COUNTS.items()))
def test_view_sets_have_their_sizes_and_unit_weight(name, count):
    views = tta.views(name)
    assert len(views) == count == len(set(views))
    assert sum(v.weight for v in views) == pytest.approx(1.0)


def test_crop_sets_contain_the_untouched_image():
    images = jnp.asarray(np.random.default_rng(0).standard_normal((2, 9, 9, 3)), jnp.float32)
    identity = [v for v in tta.views("crop25") if (v.dy, v.dx) == (4, 4)]
    assert len(identity) == 1
    np.testing.assert_array_equal(tta.view_images(identity[0], images), images)


def test_airbench_views_are_mirrors_and_reflected_one_pixel_shifts():
    x = np.arange(2 * 5 * 5 * 1, dtype=np.float32).reshape(2, 5, 5, 1)
    views = tta.views("airbench")
    mirror = tta.view_images(views[1], jnp.asarray(x))
    np.testing.assert_array_equal(mirror, x[:, :, ::-1])
    down_right = tta.view_images(tta.View(1.0, False, 1, 0, 0, "reflect"), jnp.asarray(x))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(down_right, padded[:, :5, :5])
    assert padded[0, 0, 0, 0] == x[0, 1, 1, 0]  # reflect does not repeat the edge


def test_tta_logits_are_the_weighted_mean_over_views():
    rng = np.random.default_rng(1)
    images = jnp.asarray(rng.standard_normal((3, 6, 6, 2)), jnp.float32)
    weights = jnp.asarray(rng.standard_normal((6 * 6 * 2, 4)), jnp.float32)
    model = lambda x: x.reshape(len(x), -1) @ weights
    got = tta.tta_logits(model, images, "flip_crop:1:1")
    expected = np.mean([np.asarray(model(tta.view_images(v, images))) for v in tta.views("flip_crop:1:1")], axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["bogus", "crop", "crop:3:2", "crop:0:1", "flip_crop:x:1"])
def test_unknown_or_malformed_sets_are_refused(name):
    with pytest.raises(ValueError, match="tta"):
        tta.views(name)
    with pytest.raises(StudyError, match="tta"):
        StudyConfig(tta=name)
