"""Fig. 2: split-half correlation and top-quarter gain vs training length.

python experiments/lucky_seeds.py --workdir=workdirs/lucky_seeds --scale=cpu
"""

from absl import app

from vmaptrain import cli

cli.define_figure_flags()
main = cli.figure_main("lucky_seeds")

if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
