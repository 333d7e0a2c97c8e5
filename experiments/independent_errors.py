"""Figs. 3 and 14: observed accuracy distribution vs the independent-errors one.

python experiments/independent_errors.py --workdir=workdirs/independent_errors --scale=cpu
"""

from absl import app

from vmaptrain import cli

cli.define_figure_flags()
main = cli.figure_main("independent_errors")

if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
