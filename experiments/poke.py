"""App. D.2 / Fig. 12: poked vs unpoked twins vs different seeds; one-ULP poke.

python experiments/poke.py --workdir=workdirs/poke --scale=cpu
"""

from absl import app

from vmaptrain import cli

cli.define_figure_flags()
main = cli.figure_main("poke")

if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
