"""The one error of this package (below the loader and the name parser, which both raise it)."""


class TraceError(ValueError):
    """A trace file or folder that cannot be used; the message is one line naming the file."""
