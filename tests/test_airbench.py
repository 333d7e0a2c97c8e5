"""airbench94: whitening layer, Dirac init, frozen whitening bias, lookahead, and the recipe
end to end on real Fashion-MNIST."""

import dataclasses
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vmaptrain import augment, optim, poke, presets, train
from vmaptrain.data import load_dataset, normalize
from vmaptrain.models import Airbench94, make_model, whitening_filters
from vmaptrain.study import SeedStudy

FASHION = "/usr/share/datasets/fashion-mnist"
pytestmark = pytest.mark.skipif(not os.path.isdir(FASHION), reason="apt-get install dataset-fashion-mnist")


@pytest.fixture(scope="module")
def fashion():
    return load_dataset(f"idx:{FASHION}")


@pytest.fixture(scope="module")
def fashion_subset(fashion, tmp_path_factory):
    """1,024 training and 500 test images of real Fashion-MNIST as an npz dataset."""
    path = tmp_path_factory.mktemp("data") / "fashion_subset.npz"
    np.savez(
        path,
        x_train=fashion.x_train[:1024],
        y_train=fashion.y_train[:1024],
        x_test=fashion.x_test[:500],
        y_test=fashion.y_test[:500],
    )
    return f"npz:{path}"


def test_whitening_filters_decorrelate_the_patches(fashion):
    images = normalize(fashion.x_train[:2000], fashion.mean, fashion.std)
    kernel = np.asarray(whitening_filters(images)).reshape(2, 2, 1, 8)
    patches = np.stack([images[:, i : 27 + i, j : 27 + j, 0] for i in (0, 1) for j in (0, 1)], -1).reshape(-1, 4)
    out = patches @ kernel.reshape(4, 8)
    np.testing.assert_allclose(out[:, 4:], -out[:, :4], rtol=1e-5, atol=1e-5)  # filters, then negations
    covariance = out[:, :4].T @ out[:, :4] / len(out)
    eigenvalues = np.linalg.eigvalsh(patches.T @ patches / len(patches))[::-1]
    np.testing.assert_allclose(covariance, np.diag(eigenvalues / (eigenvalues + 5e-4)), atol=2e-3)
    assert np.all(np.diff(np.diag(covariance)) <= 1e-3)  # largest eigenvalue first


def test_square_convs_start_as_identities_and_the_whitening_is_not_a_parameter(fashion):
    model = make_model("airbench94", 10, 0.25, normalize(fashion.x_train[:500], fashion.mean, fashion.std))
    x = jnp.asarray(normalize(fashion.x_train[:2], fashion.mean, fashion.std))
    variables = model.init(jax.random.key(0), x, train=False)
    params = flax.traverse_util.flatten_dict(variables["params"])
    assert ("whiten", "bias") in params and not any(k[0] == "whiten" and k[1] == "kernel" for k in params)
    assert not any("scale" in k for k in flax.traverse_util.flatten_dict(variables["params"]))  # BN scale frozen at 1
    square = np.asarray(params[("group2", "conv2", "kernel")])
    identity = np.zeros_like(square)
    identity[1, 1] = np.eye(square.shape[2])
    np.testing.assert_array_equal(square, identity)
    rectangular = np.asarray(params[("group1", "conv1", "kernel")])  # 8 → 16: 8 identities, 8 random
    np.testing.assert_array_equal(rectangular[..., :8], identity[:, :, :8, :8])
    assert np.std(rectangular[..., 8:]) > 0
    assert model.apply(variables, x, train=False).shape == (2, 10)


def _mechanics_spec(model):
    return train.TrainSpec(
        model=model,
        optimizer="nesterov",
        schedule=optim.Schedule("constant", 7),
        batch_size=8,
        steps_per_epoch=7,
        augment=augment.AugmentConfig(),
        norm_lr_scale=64.0,
        norm_wd_scale=1 / 64,
        limited=(("whiten/bias", 2),),
        lookahead=True,
    )


def test_whitening_bias_freezes_and_lookahead_pulls_the_weights(fashion):
    x = jnp.asarray(normalize(fashion.x_train[:8], fashion.mean, fashion.std))
    y = jnp.asarray(fashion.y_train[:8], jnp.int32)
    model = make_model("airbench94", 10, 0.125, np.asarray(x))
    spec = _mechanics_spec(model)
    hyper = train.Hyper(*(jnp.float32(v) for v in (0.5, 1e-3, 0.85, 0.2)))
    key = jnp.asarray([0, 1], jnp.uint32)
    state = train.init_run(spec, key, key, key, hyper, poke.never(), x)
    step = jax.jit(lambda s: train.train_step(spec, s, (x, y))[0])
    history = [state]
    for _ in range(7):
        history.append(step(history[-1]))
    bias = [np.asarray(s.params["whiten"]["bias"]) for s in history]
    assert not np.array_equal(bias[0], bias[1]) and not np.array_equal(bias[1], bias[2])
    assert all(np.array_equal(bias[2], b) for b in bias[3:5])  # frozen after 2 steps (till lookahead moves it)
    # Step 5: the weights jump to the slow copy; after the last step (7) they are the slow copy.
    for k in (5, 7):
        jax.tree.map(np.testing.assert_array_equal, history[k].params, history[k].ema[0])
        jax.tree.map(np.testing.assert_array_equal, history[k].batch_stats, history[k].ema[1])
    kernel = lambda s: np.asarray(s.params["head"]["kernel"])
    assert not np.array_equal(kernel(history[6]), np.asarray(history[6].ema[0]["head"]["kernel"]))
    np.testing.assert_array_equal(
        np.asarray(history[7].ema[0]["head"]["kernel"]), np.asarray(history[5].ema[0]["head"]["kernel"])
    )  # 7 % 5 ≠ 0: no EMA move


def test_recipe_trains_on_real_fashion_mnist_bitwise_reproducibly(fashion_subset):
    recipe = presets.recipe("airbench94")
    assert recipe["epochs"] == 9.9 and recipe["lr"] * recipe["wd"] == pytest.approx(0.0153 * 1024 / 7850.67, rel=1e-4)
    # 8 steps per epoch, 4 epochs (the whitening bias freezes after 3), quarter width.
    config = dict(
        recipe,
        dataset=fashion_subset,
        num_seeds=2,
        width=0.25,
        batch_size=128,
        epochs=4,
        warmup_epochs=0.23 * 4,
        strategy="unrolled",
    )
    first = SeedStudy(**config).run(None, progress=False)
    again = SeedStudy(**config).run(None, progress=False)
    np.testing.assert_array_equal(first.logits, again.logits)
    assert first.summary["accuracy_mean"] > 0.6 and all(r["status"] == "finished" for r in first.runs)
    assert np.asarray(first.state.step).tolist() == [32, 32]
    # The stored predictions are airbench's 6-view TTA of the final (lookahead) weights.
    spec = first.spec
    run0 = jax.tree.map(lambda a: a[0], first.state)
    data = load_dataset(fashion_subset)
    x = jnp.asarray(normalize(data.x_test[:100], data.mean, data.std))
    plain = np.asarray(train.eval_logits(dataclasses.replace(spec, tta="none"), run0, x))
    with_tta = np.asarray(train.eval_logits(spec, run0, x))
    assert not np.allclose(with_tta, plain)
    np.testing.assert_allclose(with_tta, first.logits[0, :100], rtol=1e-4, atol=1e-4)
    assert isinstance(spec.model, Airbench94)
