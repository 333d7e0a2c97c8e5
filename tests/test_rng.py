import jax
import numpy as np
import pytest

from vmaptrain import rng
from vmaptrain.engine import seed_axis


def test_parse_vary():
    assert rng.parse_vary("all") == ("init", "order", "aug")
    assert rng.parse_vary("aug,init") == ("init", "aug")
    assert rng.parse_vary("none") == ()
    assert rng.parse_vary("") == ()
    with pytest.raises(ValueError, match="unknown stream"):
        rng.parse_vary("init,dropout")
    with pytest.raises(ValueError, match="twice"):
        rng.parse_vary("init,init")


def test_fixed_streams_share_the_fixed_seed():
    seeds = rng.run_seeds(7, ("order",), fixed_seed=3)
    assert seeds.as_dict() == {"init": 3, "order": 7, "aug": 3}


def test_run_keys_do_not_depend_on_study_size_or_order():
    every = [rng.run_seeds(i, rng.STREAMS, 0) for i in range(8)]
    some = [every[5], every[2]]
    for stream in rng.STREAMS:
        full = seed_axis.stream_keys(11, every, stream)
        part = seed_axis.stream_keys(11, some, stream)
        np.testing.assert_array_equal(part, full[[5, 2]])
        single = np.asarray(jax.random.key_data(rng.stream_key(11, 5, stream)))
        np.testing.assert_array_equal(single, full[5])


def test_streams_and_study_seeds_are_distinct():
    seeds = [rng.run_seeds(0, rng.STREAMS, 0)]
    keys = {s: seed_axis.stream_keys(0, seeds, s)[0].tobytes() for s in rng.STREAMS}
    assert len(set(keys.values())) == 3
    other_study = seed_axis.stream_keys(1, seeds, "init")[0].tobytes()
    assert other_study != keys["init"]
