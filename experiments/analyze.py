"""Analyse a multi-run study: report.json and figures from saved logits / predictions.

  python experiments/analyze.py --logits=logits.npy --labels=labels.npy --out=DIR
  python experiments/analyze.py --preds=preds.npy --labels=labels.npy --out=DIR

Logits ([R, n, k] float16/float32) are memory-mapped and streamed in chunks of runs.
On bad input or bad flags it prints one line `error: ...` to stderr, exits 2 and writes
nothing, like the other binaries (`vmaptrain.cli`).
"""

from absl import app, flags, logging

from vmaptrain import cli
from vmaptrain.estimators import EstimatorInputError
from vmaptrain.estimators.files import analyze_files

FLAGS = flags.FLAGS
_LOGITS = flags.DEFINE_string("logits", None, "[R, n, k] float16/float32 logits .npy")
_PREDS = flags.DEFINE_string("preds", None, "[R, n] integer predictions .npy (optional)")
_LABELS = flags.DEFINE_string("labels", None, "[n] integer labels .npy")
_OUT = flags.DEFINE_string("out", None, "output directory")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", None, "k, if not given by the logits")
_PAIR_THRESHOLD = flags.DEFINE_float("pair_threshold", 0.02, "pair-independence threshold")
_BOOTSTRAP = flags.DEFINE_integer("bootstrap", 1000, "bootstrap resamples of runs (0: none)")
_SEED = flags.DEFINE_integer("seed", 0, "bootstrap seed")
_CHUNK_RUNS = flags.DEFINE_integer("chunk_runs", 1024, "runs per streamed chunk")
flags.mark_flags_as_required(["labels", "out"])


def analyze() -> None:
    if FLAGS["verbosity"].present:  # run_or_exit quiets logging; an explicit --verbosity wins
        logging.set_verbosity(FLAGS.verbosity)
    try:
        report = analyze_files(
            _LABELS.value,
            _OUT.value,
            logits_path=_LOGITS.value,
            preds_path=_PREDS.value,
            num_classes=_NUM_CLASSES.value,
            pair_threshold=_PAIR_THRESHOLD.value,
            bootstrap=_BOOTSTRAP.value,
            seed=_SEED.value,
            chunk_runs=_CHUNK_RUNS.value,
        )
    except EstimatorInputError as error:
        cli.fail(" ".join(str(error).splitlines()))  # one line, even if numpy's message has several
    print(
        f"R={report['num_runs']} n={report['num_examples']}: accuracy "
        f"{100 * report['accuracy_mean']:.3f}% ± {100 * report['accuracy_std']:.3f}%, "
        f"distribution-wise std {100 * report['dist_std']:.4f}% -> {_OUT.value}"
    )


def main(argv):
    cli.reject_extra_args(argv)
    cli.run_or_exit(analyze)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
