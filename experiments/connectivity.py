"""Interpolation barriers between seeds, with neuron alignment, BN reset and REPAIR, and the
instability (spawning) analysis. Writes WORKDIR/report.json and the figures.

    python experiments/connectivity.py --workdir=workdirs/connectivity --scale=cpu

Resumable: rerunning the same command continues where it stopped.
"""

from absl import app, flags

from vmaptrain import cli
from vmaptrain.connectivity import experiment

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Where the studies, caches and report go (resumed if present).")
flags.DEFINE_enum("scale", "smoke", ["smoke", "cpu", "paper"], "Preset size of the experiment.")
flags.DEFINE_string("dataset", None, "Override the preset's dataset.")
flags.DEFINE_string("model", None, "Override the preset's model (small_cnn, resnet14_sd, resnet9_paper).")
flags.DEFINE_list("widths", None, "Override the preset's width multipliers, e.g. 0.5,1.")
flags.DEFINE_integer("epochs", None, "Override the preset's epochs.")
flags.DEFINE_integer("num_seeds", None, "Override the preset's number of seeds.")
flags.DEFINE_list("pairs", None, "Pairs to compare as i-j, e.g. 0-1,2-3 (default: all i<j up to the preset's cap).")
flags.DEFINE_list("alphas", None, "α grid: a number of points (odd) or the values, e.g. 0,0.25,0.5,0.75,1.")
flags.DEFINE_enum(
    "noise",
    None,
    ["order", "aug", "order,aug", "poke"],
    "What the spawned children differ in (instability analysis); default: the preset's (order).",
)
flags.DEFINE_bool("instability", True, "Also run the spawning (instability) analysis.")
flags.DEFINE_string("figures_dir", None, "Write the PNGs here instead of the workdir.")
flags.mark_flag_as_required("workdir")


def main(argv):
    cli.reject_extra_args(argv)
    cli.run_or_exit(lambda: experiment.from_flags(FLAGS))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
