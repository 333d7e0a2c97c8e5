"""Summers & Dinneen §5: TTA and snapshot ensembles, and how much variability each removes.

python experiments/mitigations.py --workdir=workdirs/mitigations --scale=cpu
"""

from absl import app

from vmaptrain import cli

cli.define_figure_flags()
main = cli.figure_main("mitigations")

if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
