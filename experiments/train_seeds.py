"""Train a seed study and write its workdir.

python experiments/train_seeds.py --workdir=workdirs/digits --dataset=digits --num_seeds=32
"""

from absl import app, flags

from vmaptrain import cli

FLAGS = flags.FLAGS
cli.define_study_flags()
flags.DEFINE_string("workdir", None, "Where the study's files go (created; resumed if it holds this study).")
flags.DEFINE_bool("overwrite", False, "Replace a workdir that holds a different study.")
flags.mark_flag_as_required("workdir")


def main(argv):
    cli.reject_extra_args(argv)
    cli.run_or_exit(lambda: cli.train_seeds(FLAGS))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
