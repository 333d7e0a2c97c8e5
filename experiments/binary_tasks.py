"""Fig. 6: the 511 binary tasks, observed std vs sqrt(err/2n).

python experiments/binary_tasks.py --workdir=workdirs/binary_tasks --scale=cpu
"""

from absl import app

from vmaptrain import cli

cli.define_figure_flags()
main = cli.figure_main("binary_tasks")

if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
