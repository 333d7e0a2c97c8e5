"""Fig. 1: test-accuracy distributions at several training lengths.

python experiments/duration_sweep.py --workdir=workdirs/duration_sweep --scale=cpu
"""

from absl import app

from vmaptrain import cli

cli.define_figure_flags()
main = cli.figure_main("duration_sweep")

if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
