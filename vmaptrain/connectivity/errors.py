"""The one error type of the connectivity package."""

from vmaptrain.config import StudyError


class ConnectivityError(StudyError):
    """Bad input to a connectivity analysis (mismatched runs, pair index, α grid, …).

    A StudyError (so a ValueError): `cli.run_or_exit` prints it as one "error: …" line and
    exits with status 2, like every other user error.
    """
