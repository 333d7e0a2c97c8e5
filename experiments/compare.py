"""Is configuration A better than B? Compare studies on this test set (Q1) and on the distribution (Q2).

  python experiments/compare.py --a=workdirs/lr005 --b=workdirs/lr01 --out=cmp
  python experiments/compare.py --study=workdirs/lr_sweep --arms_by=lr --out=cmp
  python experiments/compare.py --a_logits=a.npy --b_logits=b.npy --labels=labels.npy --out=cmp

Writes compare.json and compare.png into --out and prints the verdict. On bad input it prints one
line `error: ...` and exits 2, writing nothing (docs/comparison.md).
"""

from absl import app, flags

from vmaptrain import cli

FLAGS = flags.FLAGS
_A = flags.DEFINE_string("a", None, "Workdir of study A (finished).")
_B = flags.DEFINE_string("b", None, "Workdir of study B (finished, same test set).")
_STUDY = flags.DEFINE_string("study", None, "Workdir of one study whose runs form the arms (with --arms_by).")
_ARMS_BY = flags.DEFINE_string(
    "arms_by", None, "Per-run field that defines the arms: lr, wd, momentum, label_smoothing, poke.step, …"
)
_A_LOGITS = flags.DEFINE_string("a_logits", None, "Arm A as .npy: [R, n, k] logits or [R, n] predictions.")
_B_LOGITS = flags.DEFINE_string("b_logits", None, "Arm B as .npy: [R, n, k] logits or [R, n] predictions.")
_LABELS = flags.DEFINE_string("labels", None, "[n] test labels .npy (with --a_logits/--b_logits).")
_DELTA = flags.DEFINE_float("delta", None, "Accuracy difference (fraction) to plan seeds for; default: the observed.")
_ALPHA = flags.DEFINE_float("alpha", 0.05, "Two-sided level of the intervals and tests.")
_POWER = flags.DEFINE_float("power", 0.8, "Power of the seed plan.")
_SINGLE_RUN = flags.DEFINE_bool("single_run", False, "Allow one run per arm (its variance is then predicted).")
_OUT = flags.DEFINE_string("out", None, "Directory for compare.json and compare.png.")
flags.mark_flag_as_required("out")


def compare() -> None:
    from vmaptrain import comparison
    from vmaptrain.config import StudyError

    options = dict(delta=_DELTA.value, alpha=_ALPHA.value, power=_POWER.value, single_run=_SINGLE_RUN.value)
    modes = {
        "--a/--b": (_A.value, _B.value),
        "--study/--arms_by": (_STUDY.value, _ARMS_BY.value),
        "--a_logits/--b_logits/--labels": (_A_LOGITS.value, _B_LOGITS.value, _LABELS.value),
    }
    chosen = [mode for mode, values in modes.items() if any(v is not None for v in values)]
    if len(chosen) != 1 or not all(v is not None for v in modes[chosen[0]]):
        raise StudyError(f"give exactly one of {'; '.join(modes)} (all flags of that one)")
    if chosen[0] == "--a/--b":
        result = comparison.compare_studies(_A.value, _B.value, out=_OUT.value, **options)
    elif chosen[0] == "--study/--arms_by":
        result = comparison.compare_study_arms(_STUDY.value, _ARMS_BY.value, out=_OUT.value, **options)
    else:
        result = comparison.compare_files(_LABELS.value, _A_LOGITS.value, _B_LOGITS.value, out=_OUT.value, **options)
    print(result["verdict"])
    print(f"compare.json and compare.png in {_OUT.value}")


def main(argv):
    cli.reject_extra_args(argv)
    cli.run_or_exit(compare)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
