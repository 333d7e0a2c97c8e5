"""Fig. 5: test-set vs distribution-wise std vs training length.

python experiments/distribution_variance.py --workdir=workdirs/distribution_variance --scale=cpu
"""

from absl import app

from vmaptrain import cli

cli.define_figure_flags()
main = cli.figure_main("distribution_variance")

if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
