"""The one exception type for problems a user can fix (bad file, bad argument).

The CLI prints it as a single ``Error: ...`` line and exits with status 2;
anything else that escapes is a bug and keeps its traceback.

A message names a parameter through ``param("level")``: the Python API shows
the parameter's name (``level must lie ...``), the command line its option
(``--level must lie ...``, mapped in ``jaccli.cli``). The library never
writes an option.
"""

import re

_OPEN, _CLOSE = "\x02", "\x03"  # control characters: a parameter's name inside a message
_MARKED = re.compile(f"{_OPEN}([A-Za-z_][A-Za-z0-9_]*){_CLOSE}")


def param(name):
    """``name``, marked as a parameter's name for a JaccliError's message."""
    return f"{_OPEN}{name}{_CLOSE}"


class JaccliError(Exception):
    """A user-facing error: the message names the file, or the parameter, and what is wrong.

    ``parameters``: the parameters the message names (``param``), in order.
    """

    @property
    def parameters(self):
        return tuple(dict.fromkeys(_MARKED.findall(self.marked)))

    @property
    def marked(self):
        """The message with its parameters still marked: for a message built on this one."""
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()

    def renamed(self, names):
        """The message with each parameter called what ``names`` (a mapping) says,
        e.g. ``{"level": "--level"}``; a parameter it lacks keeps its name."""
        return _MARKED.sub(lambda found: names.get(found[1], found[1]), self.marked)

    def __str__(self):
        return self.renamed({})


class ParameterError(JaccliError, ValueError):
    """A bad value of a parameter of the Python API (an option of the command line).

    Also a ``ValueError``, as Python code expects of a bad argument.
    """


class ResourceError(JaccliError, MemoryError):
    """The work would not fit in memory (or the output on disk): refused before it starts.

    Also a ``MemoryError``, so Python code that already guards against
    running out of memory catches it.
    """


class JaccliWarning(UserWarning):
    """Something a user should know that does not stop the run (tensors a spec never
    uses); the CLI prints it on standard error, whatever --quiet says."""
