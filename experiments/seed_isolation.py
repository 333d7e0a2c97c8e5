"""App. D.1 / Summers & Dinneen: vary all sources, or only init, order or aug.

python experiments/seed_isolation.py --workdir=workdirs/seed_isolation --scale=cpu
"""

from absl import app

from vmaptrain import cli

cli.define_figure_flags()
main = cli.figure_main("seed_isolation")

if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
