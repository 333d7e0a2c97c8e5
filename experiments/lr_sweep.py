"""Fig. 8: per-run learning rates in one study; mean and excess variance per lr.

python experiments/lr_sweep.py --workdir=workdirs/lr_sweep --scale=cpu
"""

from absl import app

from vmaptrain import cli

cli.define_figure_flags()
main = cli.figure_main("lr_sweep")

if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
