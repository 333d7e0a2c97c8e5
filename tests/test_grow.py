"""Growing a finished study: a larger num_seeds trains only the new runs, the old blocks stay
byte for byte, and the result is bitwise the larger study from the start; everything else that
could make the grown study a mix of two studies is refused with one clear error."""

import datetime
import hashlib
import json
import os
import shutil

import numpy as np
import pytest

import helpers
from conftest import snapshot
from vmaptrain.config import StudyConfig, StudyError
from vmaptrain.study import SeedStudy, load_result, runs_to_train

pytestmark = pytest.mark.filterwarnings("ignore")

# One epoch of a quarter-width CNN: the smallest study that still learns digits. The default
# strategy (dense per-run programs on CPU) trains the 2 old runs as one group and, grown, the
# 3rd run alone, where the study of 3 from the start trains all three together.
CONFIG = dict(dataset="digits", model="small_cnn", width=0.25, epochs=1, batch_size=64)
OLD_LR, NEW_LR = [0.05, 0.1], [0.05, 0.1, 0.07]
OUTPUTS = ("logits.npy", "labels.npy", "runs.json", "summary.json")
OLD_BLOCK = os.path.join("predictions", "runs_000000-000002.npy")


def read(workdir, name):
    with open(os.path.join(workdir, name), "rb") as handle:
        return handle.read()


def copy(workdir, tmp_path):
    target = str(tmp_path / "w")
    shutil.copytree(workdir, target)
    return target


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """A study of 2 runs, grown to 3: (workdir, its predictions/ before growing, the 2-run summary)."""
    workdir = str(tmp_path_factory.mktemp("grown") / "w")
    SeedStudy(**CONFIG, num_seeds=2, lr=OLD_LR).run(workdir, progress=False)
    before = snapshot(os.path.join(workdir, "predictions"))
    small_summary = json.loads(read(workdir, "summary.json"))
    SeedStudy(**CONFIG, num_seeds=3, lr=NEW_LR).run(workdir, progress=False)
    return workdir, before, small_summary


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("scratch") / "w")
    SeedStudy(**CONFIG, num_seeds=3, lr=NEW_LR).run(workdir, progress=False)
    return workdir


def test_a_grown_study_is_bitwise_the_larger_study_from_the_start(grown, scratch):
    workdir, before, _ = grown
    for name in OUTPUTS:
        assert read(workdir, name) == read(scratch, name), name
    after = snapshot(os.path.join(workdir, "predictions"))
    assert {name: after[name] for name in before} == before  # the old blocks, byte for byte
    assert sorted(set(after) - set(before)) == ["runs_000002-000003.json", "runs_000002-000003.npy"]
    # Only the new run trained: its own group in the curves, next to the old runs' group.
    with open(os.path.join(workdir, "metrics.jsonl")) as handle:
        assert sorted({tuple(json.loads(line)["group"]) for line in handle}) == [(0, 2), (2, 3)]


def test_config_json_records_the_growth_and_the_finished_blocks(grown):
    workdir, _, _ = grown
    record = json.loads(read(workdir, "config.json"))
    assert record["config"]["num_seeds"] == 3 and record["config"]["lr"] == NEW_LR
    [growth] = record["growth"]
    assert (growth["from"], growth["to"]) == (2, 3)
    assert datetime.datetime.fromisoformat(growth["utc"]).tzinfo is not None
    predictions = os.path.join(workdir, "predictions")
    assert record["blocks"] == {
        name: hashlib.sha256(read(predictions, name)).hexdigest() for name in sorted(os.listdir(predictions))
    }


def test_rerunning_the_grown_study_reads_it_back(grown, scratch):
    workdir, _, _ = grown
    before = snapshot(workdir)
    result = SeedStudy(**CONFIG, num_seeds=3, lr=NEW_LR).run(workdir, progress=False)
    assert snapshot(workdir) == before
    np.testing.assert_array_equal(result.logits, load_result(scratch).logits)


def test_the_first_runs_of_a_study_are_the_smaller_study(grown):
    workdir, _, small_summary = grown
    first_two = load_result(workdir, runs=range(2))
    whole = load_result(workdir)
    np.testing.assert_array_equal(first_two.logits, whole.logits[:2])
    assert first_two.runs == whole.runs[:2]
    assert json.loads(json.dumps(first_two.summary)) == small_summary
    assert [r["index"] for r in whole.select([2, 0]).runs] == [2, 0]
    for bad in ([], [0, 0], [3], range(-1, 1)):
        with pytest.raises(StudyError, match=r"runs must be distinct indices in 0\.\.2"):
            whole.select(bad)


@pytest.mark.parametrize(
    "overrides, pattern",
    [
        (
            dict(num_seeds=2, lr=OLD_LR),
            r"holds this study with 3 runs and num_seeds is 2: a study does not shrink; rerun with num_seeds=3 "
            r"and select runs in Python with vmaptrain\.study\.load_result\('.*', runs=range\(2\)\)",
        ),
        (
            dict(num_seeds=4, lr=NEW_LR + [0.05], epochs=2),
            r"holds a different study \(num_seeds: saved 3 vs now 4, epochs: saved 1 vs now 2\) "
            r"\(a study grows by num_seeds alone, per-run lists going on from the saved ones\)",
        ),
        (
            dict(num_seeds=4, lr=[0.05, 0.2, 0.07, 0.05]),
            r"\(num_seeds: saved 3 vs now 4, lr: saved \[0\.05, 0\.1, 0\.07\] vs now \[0\.05, 0\.2, 0\.07, 0\.05\]\)",
        ),
        (dict(num_seeds=4, lr=0.05), r"\(num_seeds: saved 3 vs now 4, lr: saved \[0\.05, 0\.1, 0\.07\] vs now 0\.05\)"),
    ],
)
def test_what_cannot_grow_is_refused_and_untouched(grown, overrides, pattern):
    workdir, _, _ = grown
    before = snapshot(workdir)
    with pytest.raises(StudyError, match=pattern):
        SeedStudy(**dict(CONFIG, **overrides)).run(workdir, progress=False)
    assert snapshot(workdir) == before


def test_the_binary_refuses_a_smaller_num_seeds_with_one_error_line(grown):
    workdir, _, _ = grown
    before = snapshot(workdir)
    flags = ["--dataset=digits", "--width=0.25", "--epochs=1", "--batch_size=64", "--lr=0.05,0.1", "--num_seeds=2"]
    code, _, err = helpers.run_in_process([f"--workdir={workdir}", *flags])
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "a study does not shrink" in lines[0] and "runs=range(2)" in lines[0]
    assert snapshot(workdir) == before


def test_an_unfinished_study_is_finished_before_it_grows(grown, tmp_path):
    workdir = copy(grown[0], tmp_path)
    os.unlink(os.path.join(workdir, "summary.json"))
    before = snapshot(workdir)
    pattern = r"3 runs, unfinished: rerun with num_seeds=3 to finish it, then with num_seeds=4 to grow it"
    with pytest.raises(StudyError, match=pattern):
        SeedStudy(**CONFIG, num_seeds=4, lr=NEW_LR + [0.05]).run(workdir, progress=False)
    assert snapshot(workdir) == before


@pytest.mark.parametrize("record", ["sha256 in config.json", "finished before blocks were recorded"])
def test_a_study_whose_old_blocks_were_altered_does_not_grow(grown, scratch, tmp_path, record):
    workdir = copy(grown[0], tmp_path)
    if record != "sha256 in config.json":
        saved = json.loads(read(workdir, "config.json"))
        del saved["blocks"]
        with open(os.path.join(workdir, "config.json"), "w") as handle:
            json.dump(saved, handle)
    block = np.load(os.path.join(workdir, OLD_BLOCK))
    block[1, 0, 0] += 1  # still a readable block of the right shape: only its content tells
    np.save(os.path.join(workdir, OLD_BLOCK), block)
    before = snapshot(workdir)
    bigger = dict(CONFIG, num_seeds=4, lr=NEW_LR + [0.05])
    with pytest.raises(StudyError, match=r"cannot grow workdir .*runs_000000-000002\.npy is not the one the finished"):
        SeedStudy(**bigger).run(workdir, progress=False)
    assert snapshot(workdir) == before
    # The advice works: without the altered block its runs train again, bitwise as before.
    os.unlink(os.path.join(workdir, OLD_BLOCK))
    os.unlink(os.path.join(workdir, OLD_BLOCK[: -len(".npy")] + ".json"))
    result = SeedStudy(**bigger).run(workdir, progress=False)
    np.testing.assert_array_equal(result.logits[:3], load_result(scratch).logits)
    assert [growth["to"] for growth in json.loads(read(workdir, "config.json"))["growth"]] == [3, 4]


def test_a_group_trains_only_its_runs_without_predictions():
    assert runs_to_train(0, 6, set(), devices=1) == [(0, 6)]
    assert runs_to_train(0, 6, {0, 1, 2, 3}, devices=1) == [(4, 6)]
    assert runs_to_train(0, 6, {0, 1, 4}, devices=1) == [(2, 4), (5, 6)]
    assert runs_to_train(8, 12, set(range(12)), devices=2) == []
    assert runs_to_train(0, 4, {0, 1}, devices=2) == [(2, 4)]
    # A stretch that would not fill whole devices: the whole group trains again.
    assert runs_to_train(0, 2, {0}, devices=2) == [(0, 2)]


def test_resize_conflicts_let_per_run_lists_go_on():
    small = StudyConfig(**CONFIG, num_seeds=2, lr=OLD_LR)
    assert StudyConfig(**CONFIG, num_seeds=3, lr=NEW_LR).resize_conflicts(small) == []
    assert StudyConfig(**CONFIG, num_seeds=3, lr=[0.05, 0.2, 0.1]).resize_conflicts(small) == ["lr"]
    assert StudyConfig(**CONFIG, num_seeds=3, lr=0.05).resize_conflicts(small) == ["lr"]
    same_lr = StudyConfig(**CONFIG, num_seeds=2, lr=0.05)
    assert StudyConfig(**CONFIG, num_seeds=5, lr=[0.05] * 5, wd=0.0).resize_conflicts(same_lr) == ["wd"]
    assert StudyConfig(**CONFIG, num_seeds=5, strategy="vmap", group_size=1).resize_conflicts(same_lr) == []


def test_a_vmapped_study_grows_bitwise_when_its_groups_come_out_the_same(tmp_path):
    # A vmapped block rounds differently with another number of runs in it; with a group_size
    # that divides the old num_seeds the grown study's groups are those of the larger study.
    vmapped = dict(CONFIG, strategy="vmap", group_size=2)
    grown, scratch = str(tmp_path / "grown"), str(tmp_path / "scratch")
    SeedStudy(**vmapped, num_seeds=2).run(grown, progress=False)
    before = snapshot(os.path.join(grown, "predictions"))
    SeedStudy(**vmapped, num_seeds=4).run(grown, progress=False)
    SeedStudy(**vmapped, num_seeds=4).run(scratch, progress=False)
    for name in OUTPUTS:
        assert read(grown, name) == read(scratch, name), name
    after = snapshot(os.path.join(grown, "predictions"))
    assert {name: after[name] for name in before} == before
