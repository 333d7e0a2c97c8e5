"""The one exception every data source raises for a problem the user can fix."""


class DataError(ValueError):
    """A dataset spec or the files behind it cannot be loaded; the message says why."""
