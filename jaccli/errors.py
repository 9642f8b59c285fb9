"""The one exception type for problems a user can fix (bad file, bad option).

The CLI prints it as a single ``Error: ...`` line and exits with status 2;
anything else that escapes is a bug and keeps its traceback.
"""


class JaccliError(Exception):
    """A user-facing error: the message names the file and what is wrong."""


class ResourceError(JaccliError, MemoryError):
    """The work would not fit in memory (or the output on disk): refused before it starts.

    Also a ``MemoryError``, so Python code that already guards against
    running out of memory catches it.
    """


class JaccliWarning(UserWarning):
    """Something a user should know that does not stop the run (tensors a spec never
    uses); the CLI prints it on standard error, whatever --quiet says."""
