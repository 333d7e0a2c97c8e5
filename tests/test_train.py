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


def test_piecewise_schedule_is_airbenchs_interpolation():
    # airbench94: np.interp(step, [0, int(0.23·476), 476], [0.2, 1, 0.07]).
    s = optim.Schedule("piecewise", total_steps=476, warmup_steps=109, start=0.2, end=0.07)
    steps = np.arange(476)
    expected = np.interp(steps, [0, 109, 476], [0.2, 1.0, 0.07])
    np.testing.assert_allclose(np.asarray(jax.vmap(s.factor)(steps)), expected, rtol=1e-6, atol=1e-7)


def test_cycles_restart_warmup_and_decay():
    # Snapshot ensembles: 3 cycles of 10 steps, each a 2-step warmup then cosine to 0.
    cyclic = optim.Schedule("cosine", total_steps=30, warmup_steps=2, cycles=3)
    single = optim.Schedule("cosine", total_steps=10, warmup_steps=2)
    got = [float(cyclic.factor(t)) for t in range(30)]
    np.testing.assert_allclose(got, [float(single.factor(t % 10)) for t in range(30)])
    assert got[10] == got[0] < got[9 + 2] and got[9] < 0.05


def test_grouped_lr_and_decay_match_pytorch_parameter_groups():
    # Two PyTorch param groups: (lr, wd) and (64·lr, wd/64), Nesterov; the decay per step of the
    # second group (lr·wd) is unchanged — airbench's BN-bias group.
    params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array([0.5])}
    grads = [{"w": jnp.array([0.5, 0.1]), "b": jnp.array([0.2])}, {"w": jnp.array([-0.2, 0.3]), "b": jnp.array([-0.1])}]
    lr, wd, mu = 0.01, 0.1, 0.85
    scales = {"w": 1.0, "b": 64.0}
    tx = optim.make_optimizer("nesterov", lr, wd, mu, lr_scales=scales, wd_scales={k: 1 / v for k, v in scales.items()})
    state = tx.init(params)
    ref = {k: np.array(v, np.float64) for k, v in params.items()}
    buf = {k: np.zeros_like(v) for k, v in ref.items()}
    for g in grads:
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        for k in ref:
            d = np.asarray(g[k], np.float64) + wd / scales[k] * ref[k]
            buf[k] = mu * buf[k] + d
            ref[k] = ref[k] - lr * scales[k] * (d + mu * buf[k])
    for k in ref:
        np.testing.assert_allclose(np.asarray(params[k]), ref[k], rtol=1e-6)


def test_parameter_scales_find_batchnorm_and_freeze_limited_parameters():
    params = {
        "conv": {"kernel": jnp.ones(3)},
        "bn": {"bias": jnp.ones(2), "scale": jnp.ones(2)},
        "whiten": {"bias": jnp.ones(4)},
    }
    stats = {"bn": {"mean": jnp.zeros(2), "var": jnp.ones(2)}}
    assert optim.parameter_scales(params, stats, 1.0, 1.0, (), 0) == (None, None)
    for step, whiten_lr in ((4, 1.0), (5, 0.0)):
        lr, wd = optim.parameter_scales(params, stats, 64.0, 0.5, (("whiten/bias", 5),), jnp.int32(step))
        assert float(lr["bn"]["bias"]) == float(lr["bn"]["scale"]) == 64.0 and float(lr["conv"]["kernel"]) == 1.0
        assert float(wd["bn"]["bias"]) == 0.5 and float(wd["whiten"]["bias"]) == 1.0
        assert float(lr["whiten"]["bias"]) == whiten_lr


@pytest.mark.parametrize(
    "bad",
    [
        dict(kind="step", total_steps=5),
        dict(kind="linear", total_steps=0),
        dict(kind="linear", total_steps=5, warmup_steps=6),
        dict(kind="cosine", total_steps=10, warmup_steps=4, cycles=5),
        dict(kind="cosine", total_steps=10, cycles=0),
    ],
)
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
