"""How a message shows what came from a file or a user: cut to a bounded length,
on one line, whatever a bad file put in it. The one place for these rules."""

#: The longest error line the CLI prints.
MAX_MESSAGE = 500


def clip(value, most=60):
    """A value's repr for an error message, cut to ``most`` characters."""
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= most else text[:most] + "..."


def printable(text, most=60):
    """A name from a file as shown in a message: cut, never more than one line."""
    text = text if len(text) <= most else text[:most - 3] + "..."
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def short_list(names, most=12):
    """The first ``most`` names, sorted, and how many there are in all."""
    names = sorted(names)
    shown = ", ".join(names[:most]) or "nothing"
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "")


def one_line(message, most=MAX_MESSAGE):
    """A message as one line of at most ``most`` characters."""
    message = " ".join(message.split())
    return message if len(message) <= most else message[:most - 3] + "..."
