"""Strategies compute the same study; what 'the same' means is documented per strategy."""

import numpy as np
import pytest

from vmaptrain.engine.strategy import Strategy
from vmaptrain.study import SeedStudy


@pytest.fixture(scope="module")
def unrolled(small_config):
    return SeedStudy(**small_config, num_seeds=4, strategy="unrolled").run(progress=False)


def test_unrolled_run_is_bitwise_independent_of_how_many_runs_share_the_program(small_config, unrolled):
    # group_size=1: each run trained alone; group_size=2: two programs of 2 runs.
    for group in (1, 2):
        other = SeedStudy(**small_config, num_seeds=4, strategy="unrolled", group_size=group).run(progress=False)
        np.testing.assert_array_equal(other.logits, unrolled.logits)


@pytest.mark.parametrize("strategy", ["unrolled+eigen", "serial+direct+eigen", "unrolled+direct+eigen"])
def test_eigen_runs_are_bitwise_independent_of_how_many_runs_share_the_program(small_config, strategy):
    # XLA's multi-threaded convolutions partition work by shape only, never by what else runs;
    # "+direct" is elementwise arithmetic of one run. So the CPU defaults can train in groups.
    together = SeedStudy(**small_config, num_seeds=4, strategy=strategy).run(progress=False)
    alone = SeedStudy(**small_config, num_seeds=4, strategy=strategy, group_size=1).run(progress=False)
    np.testing.assert_array_equal(alone.logits, together.logits)


@pytest.mark.parametrize("strategy", ["vmap", "chunk:2"])
def test_vmapped_strategies_agree_with_unrolled(small_config, unrolled, strategy):
    other = SeedStudy(**small_config, num_seeds=4, strategy=strategy).run(progress=False)
    same = (other.logits.argmax(-1) == unrolled.logits.argmax(-1)).mean()
    assert same >= 0.999, f"{strategy}: only {same:.4%} identical predictions"
    np.testing.assert_allclose(other.logits, unrolled.logits, atol=2e-3, rtol=1e-3)


def test_strategy_names():
    assert Strategy.parse("vmap").chunk_size(8) == 8
    assert Strategy.parse("unrolled").chunk_size(8) == 1
    assert Strategy.parse("chunk:3").chunk_size(8) == 3
    assert Strategy.parse("chunk:16").chunk_size(8) == 8
    for bad in ("pmap", "chunk:0", "chunk:x", ""):
        with pytest.raises(ValueError, match="unknown strategy"):
            Strategy.parse(bad)
