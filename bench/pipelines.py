"""The CSV pipelines a careful user would write around jaccli's Python API.

``python -m bench.pipelines KIND QUANTITY MODEL IN.csv OUT.csv`` runs one of
them (KIND: pyarrow, polars) in a process of its own and prints its peak
RSS on standard error as ``VMHWM bytes`` (as bench.peak does for the CLI).

- pyarrow: ``pyarrow.csv.open_csv`` streams record batches; each batch goes
  through ``model.compute`` and out through ``pyarrow.csv.CSVWriter``.
- polars: ``scan_csv(...).collect_batches`` streams batches (streaming engine); each result frame is
  appended with ``DataFrame.write_csv``.
Both write the shortest round-trip text of every float64 (checked on
subnormals, +-max, -0.0 and 0.30000000000000004 by the bench).
"""

import sys

import numpy as np

BATCH_BYTES = 1 << 24  # pyarrow's block size: 16 MB of text per batch


def _columns(model, quantity):
    from jaccli.quantities import column_names

    return column_names(quantity, model)


def pyarrow_pipeline(model, quantity, source, target):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = _columns(model, quantity)
    schema = pa.schema([(name, pa.float64()) for name in names])
    reader = pacsv.open_csv(source, read_options=pacsv.ReadOptions(block_size=BATCH_BYTES),
                            convert_options=pacsv.ConvertOptions(
                                column_types={name: pa.float64() for name in model.input_names}))
    with pacsv.CSVWriter(target, schema) as writer:
        for batch in reader:
            x = np.column_stack([batch.column(i).to_numpy() for i in range(batch.num_columns)])
            rows = model.compute(quantity, x).reshape(len(x), -1)
            writer.write_batch(pa.RecordBatch.from_arrays(
                [pa.array(rows[:, k]) for k in range(rows.shape[1])], schema=schema))


def polars_pipeline(model, quantity, source, target):
    import polars as pl

    names = _columns(model, quantity)
    frames = pl.scan_csv(source, schema_overrides={n: pl.Float64 for n in model.input_names})
    with open(target, "wb") as handle:
        header = True
        for frame in frames.collect_batches(chunk_size=200_000, engine="streaming"):
            x = frame.to_numpy().astype(np.float64, copy=False)
            rows = model.compute(quantity, x).reshape(len(x), -1)
            pl.DataFrame(rows, schema=names, orient="row").write_csv(handle, include_header=header)
            header = False


PIPELINES = {"pyarrow": pyarrow_pipeline, "polars": polars_pipeline}


def round_trip(kind, source, target):
    """Read a CSV of float64 columns and write it back, through ``kind``'s reader and writer.

    The bench parses ``target`` with Python's float() and compares the bits
    with the NPY the CSV was written from: reading and writing both exact.
    """
    if kind == "pyarrow":
        import pyarrow.csv as pacsv

        pacsv.write_csv(pacsv.read_csv(source), target)
    elif kind == "polars":
        import polars as pl

        pl.read_csv(source, infer_schema_length=0).cast(pl.Float64).write_csv(target)
    else:
        from jaccli.io.points import read_points
        from jaccli.io.writers import TableWriter

        with open(source) as handle:
            names = handle.readline().strip().split(",")
        points = np.asarray(read_points(source, names))
        with open(target, "w") as handle:
            writer = TableWriter("-", "csv", names, stdout=handle)
            writer.write(0, points)
            writer.commit()


def main(argv=None):
    import jaccli

    from .peak import vm_hwm_bytes

    kind, quantity, model_path, source, target = (argv or sys.argv[1:])[:5]
    PIPELINES[kind](jaccli.load(model_path), quantity, source, target)
    sys.stderr.write(f"\nVMHWM {vm_hwm_bytes()}\n")


if __name__ == "__main__":
    main()
