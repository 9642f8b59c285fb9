"""Which columns of a table hold the inputs: one rule for every reader.

The points of every command, a training file (inputs, then targets) and
``check``'s reference outputs are all chosen by ``select_columns``:

- header cells are matched to the names case-insensitively, surrounding
  spaces ignored; a header naming every name gives those columns, in the
  names' order (other columns are ignored);
- names that are only placeholders (the spec gave a count, so the inputs are
  x1..xn) and a header naming none of them: the columns by position, when the
  table is exactly as wide as what it must hold;
- no header: by position, when the table is exactly that wide;
- picks (``--columns A,B`` or ``3,1``): header names or 1-based column
  numbers, one per name, in the names' order;
- anything else is an error naming what is missing and the option that picks
  the columns. Points are never taken from the wrong columns silently.
"""

from dataclasses import dataclass
from typing import List, Optional

from jaccli.errors import JaccliError, param


@dataclass
class Wanted:
    """Columns a reader wants: their names in order, and how the user may pick them."""

    names: List[str]
    what: str = "input"  # "input", "target", "output": for messages
    picks: Optional[List[str]] = None  # from columns: header names or numbers from 1
    option: str = param("columns")  # the parameter that picks them (errors.param)
    placeholders: bool = False  # default names (x1..xn): an unnamed header goes by position


def placeholder_names(names, prefix):
    """Whether ``names`` are the defaults a count gives (x1..xn, y1..ym)."""
    return list(names) == [f"{prefix}{i + 1}" for i in range(len(names))]


def parse_picks(text):
    """``--columns`` text (``a,b`` or ``3,1``) as a list, or None."""
    if text is None:
        return None
    return [part.strip() for part in text.split(",")]


def _key(cell):
    return cell.strip().casefold()


def header_index(header, name, source, what="column"):
    """The index of the header cell naming ``name``, or None; a name found twice is an error."""
    matches = [i for i, cell in enumerate(header) if _key(cell) == _key(name)]
    if len(matches) > 1:
        raise JaccliError(f"{source}: the header names the {what} {name!r} twice")
    return matches[0] if matches else None


def names_all(header, names, source):
    """Whether ``header`` (cells, or None) names every one of ``names``."""
    return header is not None and all(header_index(header, n, source) is not None for n in names)


def select_columns(header, width, groups, source):
    """The column indices holding each group's names, the groups in order.

    ``groups``: a list of ``Wanted``. By position, the groups follow each
    other (a training file: the inputs, then the targets) and the table must
    be exactly as wide as all of them.
    """
    columns = []
    for index, group in enumerate(groups):
        if group.picks is not None:
            columns += _picked(header, width, group, source)
        elif not _by_position(header, group, source):
            columns += [header_index(header, name, source, group.what) for name in group.names]
        else:
            total = sum(len(g.names) for g in groups)
            if width != total:
                raise JaccliError(_width_problem(header, width, groups, source))
            start = sum(len(g.names) for g in groups[:index])
            columns += list(range(start, start + len(group.names)))
    return columns


def _by_position(header, group, source):
    """Whether ``group`` is taken by position; an error if its header names only some of it."""
    if header is None:
        return True
    found = [header_index(header, name, source, group.what) for name in group.names]
    missing = [name for name, index in zip(group.names, found) if index is None]
    if not missing:
        return False
    if group.placeholders and len(missing) == len(group.names):
        return True
    listed = ", ".join(repr(name) for name in missing)
    raise JaccliError(f"{source}: no {group.what} column {listed} (the header has "
                      f"{', '.join(header)}); name the columns in the header as the spec "
                      f"does, or pick them with {group.option} (header names or numbers "
                      f"from 1)")


def _width_problem(header, width, groups, source):
    hint = ""
    if width == 1 and header is not None and any(sep in header[0] for sep in ";| "):
        hint = (" (is it separated by ';' or spaces? the delimiter is found in the first "
                "line: a tab, a comma, or spaces for .txt/.tsv)")
    options = " and ".join(dict.fromkeys(g.option for g in groups))
    if len(groups) == 1:
        group = groups[0]
        expected = (f"the model has {len(group.names)} {group.what}s "
                    f"({', '.join(group.names)})")
    else:  # a training file
        expected = ("a training file holds the inputs and the targets: "
                    + " then ".join(", ".join(g.names) for g in groups)
                    + f" ({sum(len(g.names) for g in groups)} columns)")
    if header is not None:
        return (f"{source}: the header has {width} columns ({', '.join(header)}) and names "
                f"none of the inputs; {expected}: pick the columns with {options}{hint}")
    return (f"{source}: {width} columns; {expected}: give a header naming them, or pick "
            f"the columns with {options} (numbers from 1){hint}")


def _picked(header, width, group, source):
    """The columns ``group.picks`` name (header names or numbers from 1), checked."""
    option, picks = group.option, group.picks
    if len(picks) != len(group.names):
        raise JaccliError(f"{option} {','.join(picks)}: {len(picks)} columns for the "
                          f"{len(group.names)} {group.what}s ({', '.join(group.names)})")
    columns = []
    for pick in picks:
        if pick.isdigit():
            number = int(pick)
            if number < 1:
                raise JaccliError(f"{option}: column numbers start at 1, not {pick}")
            if number > width:
                raise JaccliError(f"{option}: column {number} is beyond the {width} columns "
                                  f"of {source}")
            index = number - 1
        elif header is None:
            raise JaccliError(f"{option}: {source} has no header to find {pick!r} in; "
                              f"give column numbers (1 is the first)")
        else:
            index = header_index(header, pick, source)
            if index is None:
                raise JaccliError(f"{option}: no column {pick!r} in the header of {source} "
                                  f"(it has {', '.join(header)})")
        if index in columns:
            raise JaccliError(f"{option}: column {pick} is picked twice")
        columns.append(index)
    return columns
