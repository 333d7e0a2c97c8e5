"""Fig. 7: no augmentation vs augmentation on reduced data at matched accuracy: the variance ratio.

python experiments/augmentation.py --workdir=workdirs/augmentation --scale=cpu
"""

from absl import app

from vmaptrain import cli

cli.define_figure_flags()
main = cli.figure_main("augmentation")

if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
