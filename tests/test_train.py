import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vmaptrain import optim, poke
from vmaptrain.study import SeedStudy


def test_linear_schedule_goes_from_one_to_zero():
    s = optim.Schedule("linear", total_steps=10)
    np.testing.assert_allclose([float(s.factor(t)) for t in (0, 5, 10)], [1.0, 0.5, 0.0])


def test_warmup_then_cosine():
    s = optim.Schedule("cosine", total_steps=12, warmup_steps=2)
    np.testing.assert_allclose([float(s.factor(t)) for t in (0, 1, 2, 7, 12)], [0.5, 1.0, 1.0, 0.5, 0.0], atol=1e-6)


@pytest.mark.parametrize("bad", [dict(kind="step", total_steps=5), dict(kind="linear", total_steps=0),
                                 dict(kind="linear", total_steps=5, warmup_steps=6)])
def test_bad_schedules_are_refused(bad):
    with pytest.raises(ValueError):
        optim.Schedule(**bad)


def test_nesterov_with_weight_decay_matches_pytorch_formula():
    # PyTorch SGD: g += wd·w; b = μ·b + g; step = g + μ·b (nesterov); w -= lr·step.
    w = jnp.array([1.0, -2.0])
    grads = [jnp.array([0.5, 0.1]), jnp.array([-0.2, 0.3])]
    lr, wd, mu = 0.1, 0.01, 0.9
    tx = optim.make_optimizer("nesterov", lr, wd, mu)
    state = tx.init(w)
    ref_w, buf = np.array(w, np.float64), np.zeros(2)
    for g in grads:
        updates, state = tx.update(g, state, w)
        w = optax.apply_updates(w, updates)
        d = np.asarray(g, np.float64) + wd * ref_w
        buf = mu * buf + d
        ref_w = ref_w - lr * (d + mu * buf)
    np.testing.assert_allclose(np.asarray(w), ref_w, rtol=1e-6)


def test_a_poke_changes_exactly_one_weight():
    params = {"conv0": {"kernel": jnp.arange(1.0, 28.0).reshape(3, 3, 1, 3)}, "head": {"bias": jnp.ones(4)}}
    p = poke.Poke(step=jnp.int32(5), index=jnp.int32(7), factor=jnp.float32(1.001))
    poked = poke.apply_poke(params, p, "conv0/kernel", step=5)
    before = np.asarray(params["conv0"]["kernel"]).ravel()
    after = np.asarray(poked["conv0"]["kernel"]).ravel()
    changed = np.flatnonzero(before != after)
    assert changed.tolist() == [7]
    assert after[7] == np.float32(before[7] * np.float32(1.001))
    np.testing.assert_array_equal(poked["head"]["bias"], params["head"]["bias"])
    untouched = poke.apply_poke(params, p, "conv0/kernel", step=4)
    np.testing.assert_array_equal(untouched["conv0"]["kernel"], params["conv0"]["kernel"])
    with pytest.raises(ValueError, match="not in the model"):
        poke.check_path(params, "conv9/kernel")


def test_poked_twin_differs_from_its_unpoked_twin(small_config):
    # Same seeds for every stream; run 1 is poked at step 0, run 0 is not.
    twins = SeedStudy(**small_config, num_seeds=2, vary="none", poke_step=[-1, 0]).run(progress=False)
    assert twins.runs[1]["poke"]["step"] == 0
    assert not np.array_equal(twins.logits[0], twins.logits[1])
    plain = SeedStudy(**small_config, num_seeds=1, vary="none").run(progress=False)
    np.testing.assert_array_equal(plain.logits[0], twins.logits[0])


def test_per_run_learning_rates_equal_separate_studies(small_config):
    config = dict(small_config, vary="none")
    sweep = SeedStudy(**dict(config, lr=[0.02, 0.08]), num_seeds=2).run(progress=False)
    for run, lr in enumerate((0.02, 0.08)):
        alone = SeedStudy(**dict(config, lr=lr), num_seeds=1).run(progress=False)
        np.testing.assert_array_equal(sweep.logits[run], alone.logits[0])
        assert sweep.runs[run]["hyperparameters"]["lr"] == pytest.approx(lr)


def test_a_diverging_run_is_frozen_and_flagged(small_config):
    result = SeedStudy(**dict(small_config, lr=[0.05, 1e9]), num_seeds=2).run(progress=False)
    assert [r["status"] for r in result.runs] == ["finished", "diverged"]
    assert result.summary["runs_diverged"] == 1
    assert result.summary["accuracy_mean"] == pytest.approx(result.runs[0]["test_accuracy"])
