"""Parquet points and outputs (with pyarrow: ``pip install 'jaccli[arrow]'``).

Points: one column per input, taken by name as a text header's are (the
column names are the header, ``selection``'s rule), read a record batch at a
time so memory stays bounded. Outputs: one column per output column, named as
the CSV header's, written GROUP_ROWS rows (one row group) at a time into a
temporary file renamed into place when complete.
"""

import numpy as np

from jaccli.io.arrow import INSTALL_HINT, pyarrow_or_none
from jaccli.errors import JaccliError
from jaccli.io.blocks import BlockRows
from jaccli.io.selection import names_all, select_columns
from jaccli.io.writers import AtomicFile, Pending, writing_to

BATCH_ROWS = 1 << 16  # rows per record batch read
GROUP_ROWS = 1 << 16  # rows per row group written


def _pyarrow(path, what):
    pa = pyarrow_or_none()
    if pa is None:
        raise JaccliError(f"{path}: {what} Parquet needs pyarrow: {INSTALL_HINT}")
    import pyarrow.parquet  # noqa: F401

    return pa


class ParquetTable:
    """A Parquet file of points: its column names are its header (``selection``'s rule)."""

    def __init__(self, path, source=None):
        pa = _pyarrow(source or path, "reading")
        import pyarrow.parquet as pq

        self.path, self.source = path, source or path
        self.keep = None  # what the rows must keep alive (a spooled pipe's temporary file)
        try:
            self.file = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise JaccliError(f"{self.source}: not a readable Parquet file ({exc})") from None
        self.schema = self.file.schema_arrow
        self.header = [name.strip() for name in self.schema.names]
        self.width = len(self.header)

    def names(self, names):
        """Whether the columns name every one of ``names`` (case-insensitively)."""
        return names_all(self.header, names, self.source)

    def take(self, groups):
        """The columns holding ``groups`` (a list of ``selection.Wanted``), read lazily."""
        import pyarrow as pa

        columns = [self.schema.names[i]
                   for i in select_columns(self.header, self.width, groups, self.source)]
        for name in columns:
            kind = self.schema.field(name).type
            if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)
                    or pa.types.is_decimal(kind)):
                raise JaccliError(f"{self.source}: column {name!r} holds {kind} values, "
                                  f"not numbers")
        if self.file.metadata.num_rows == 0:
            raise JaccliError(f"{self.source}: zero points")
        rows = ParquetRows(self, columns)
        rows.keep = self.keep
        return rows


class ParquetRows(BlockRows):
    """The chosen columns of a Parquet file, a record batch at a time, in order."""

    def __init__(self, table, columns):
        self.source, self.file, self.names = table.source, table.file, columns
        super().__init__(self.file.metadata.num_rows, len(columns))
        self._rewind()

    def _rewind(self):
        self._batches = self.file.iter_batches(batch_size=BATCH_ROWS, columns=self.names)
        self._row = 0

    def _read_block(self):
        import pyarrow as pa

        batch = next(self._batches, None)
        if batch is None:
            return None
        block = np.empty((batch.num_rows, len(self.names)))
        for k, name in enumerate(self.names):
            column = batch.column(k)
            if column.null_count:
                row = self._row + int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
                raise JaccliError(f"{self.source}: point {row + 1}, column {name!r} is empty (null)")
            block[:, k] = column.cast(pa.float64()).to_numpy()
        self._row += batch.num_rows
        return block


class ParquetWriter:
    """A Parquet file, one row group per chunk, one float column per output column."""

    @writing_to
    def __init__(self, path, columns, dtype):
        pa = _pyarrow(path, "writing")
        import pyarrow.parquet as pq

        self.target = path
        kind = pa.float32() if np.dtype(dtype) == np.float32 else pa.float64()
        self.schema = pa.schema([(name, kind) for name in columns])
        self.pending = Pending(cells=GROUP_ROWS * len(columns))
        self.atomic = AtomicFile(path)
        try:
            self.writer = pq.ParquetWriter(self.atomic.temp_path, self.schema)
        except BaseException:
            self.atomic.abort()
            raise

    @writing_to
    def write(self, start, rows):
        rows = self.pending.add(rows)
        if rows is not None:
            self._write_group(rows)

    def _write_group(self, rows):
        import pyarrow as pa

        self.writer.write_batch(pa.RecordBatch.from_arrays(
            [pa.array(np.ascontiguousarray(rows[:, k])) for k in range(rows.shape[1])],
            schema=self.schema))

    @writing_to
    def commit(self):
        rows = self.pending.drain()
        if rows is not None:
            self._write_group(rows)
        self.writer.close()
        self.atomic.commit()

    def abort(self):
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - the file goes anyway
            pass
        self.atomic.abort()
