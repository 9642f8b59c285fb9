"""The one pipeline of the commands that read points and write a table (value ...
laplacian, confint, check, sensitivity): before any work, standard input read once,
the model loaded, -o and --plot checked against the inputs; then the points; then
the computation (chunk by chunk, written as they come, or whole, written as a
table), on a Dask cluster or here, with a progress bar; the output and its --plot
figure written whole or not at all; then the warnings and the summary.

A command is a subclass of ``Streamed`` or ``Tabled`` that says only what differs:
what it computes, the writer of its columns, its warnings and its summary.
"""

import contextlib
import time
from functools import cached_property

from jaccli.cli.options import input_paths, load_model, load_points, one_stdin
from jaccli.errors import JaccliError
from jaccli.io import registry


class Run:
    """One run of a command, from its click options (``run()`` does it all)."""

    name = None  # the command, as a JSON head and a Zarr store name it
    formats = None  # the output formats it can write (None: every one) ...
    refusal = None  # ... and why not the others: "{-o}: {refusal} {suffixes}, not {fmt}"
    overflow_counted = False  # RuntimeWarnings silenced: the command reports overflows once
    warn_after_summary = False

    def __init__(self, model, spec, dtype, points_path, points_fmt, columns, at, chunk_size,
                 output, fmt, quiet, scheduler=None, workers=None, plot=None, plot_x=None,
                 output_name=None, **options):
        self.model_path, self.spec, self.dtype = model, spec, dtype
        self.output_name = output_name
        self.points_path, self.points_fmt, self.columns, self.at = points_path, points_fmt, columns, at
        self.chunk_size, self.output, self.fmt, self.quiet = chunk_size, output, fmt, quiet
        self.scheduler, self.workers, self.plot, self.plot_x = scheduler, workers, plot, plot_x
        vars(self).update(options)  # the command's own options, by their click names
        self.figure = self.stats = self.result = None
        self.non_finite = 0

    @cached_property
    def console(self):
        """Standard error's console, made when first used (a quiet run without warnings
        never imports rich)."""
        from jaccli.cli.summary import stderr_console

        return stderr_console()

    def run(self):
        self.check_outputs()
        self.read()
        writer, seconds = self.compute()
        self.report(writer, seconds)
        return self

    # --- the steps every command shares ------------------------------------------

    def check_outputs(self):
        """Before any work: one option at most on standard input, the model, then -o
        (and the command's other outputs) and --plot: writable, and none an input."""
        from jaccli.cli.plotting import plot_target
        from jaccli.io.writers import check_output_path, output_format

        reads = list(self.reads().values())
        one_stdin(spec=self.spec, **self.reads(), points=self.points_path)
        self.model = load_model(self.model_path, self.spec, self.dtype, self.output_name)
        check_output_path(self.output, input_paths(self.model_path, self.spec, self.points_path,
                                                   *reads))
        self.fmt = output_format(self.output, self.fmt)
        if self.formats is not None and self.fmt not in self.formats:
            raise JaccliError(f"{self.output}: {self.refusal} "
                              f"{registry.suffix_list(self.formats)}, not {self.fmt}")
        others = self.check_other_outputs()
        self.plot = plot_target(self.plot, input_paths(self.model_path, self.spec,
                                                       self.points_path, *reads, *others),
                                self.output, self.plot_x)

    def read(self):
        """The points; a file read whole is checked whole, up front (a streamed one
        chunk by chunk)."""
        from jaccli.io.finite import check_finite_points
        from jaccli.io.points import is_streamed

        self.read_points()
        if not is_streamed(self.points):
            check_finite_points(self.points, self.source)

    def read_points(self):
        self.points, self.source = load_points(self.model, self.points_path, self.at,
                                               self.points_fmt, self.columns, self.spec)

    def report(self, writer, seconds):
        """The warnings (always) and the summary (unless --quiet)."""
        from jaccli.cli.summary import warn

        messages = self.warnings(writer)
        for message in [] if self.warn_after_summary else messages:
            warn(self.console, message)
        if not self.quiet:
            self.summarise(seconds)
            for line in self.wrote():
                self.console.print(line)
        for message in messages if self.warn_after_summary else []:
            warn(self.console, message)

    def overflows(self):
        return overflows_counted() if self.overflow_counted else contextlib.nullcontext()

    def progress(self):
        from jaccli.cli.summary import LazyProgress

        if self.quiet:  # no console either: rich is not even imported
            return LazyProgress(None, len(self.points), enabled=False)
        return LazyProgress(self.console, len(self.points), enabled=self.console.is_terminal)

    # --- what a command may say differently -----------------------------------------

    def reads(self):
        """{option: path} of the files it reads besides the model, spec and points."""
        return {}

    def check_other_outputs(self):
        """Check the outputs besides -o and --plot; returns their paths (--plot's inputs)."""
        return []

    def warnings(self, writer):
        from jaccli.cli.summary import null_warnings

        return null_warnings(writer)

    def wrote(self):
        """The summary's last lines: what was written besides standard output."""
        return [] if self.plot is None else [f"wrote {self.plot} (figure)"]

    def summarise(self, seconds):
        raise NotImplementedError

    def data_writer(self):
        """The writer of the command's data (``open_writer``)."""
        raise NotImplementedError


class Streamed(Run):
    """A command whose results are written chunk by chunk, as they come."""

    def compute(self):
        from jaccli.io.writers import Together
        from jaccli.scale.cluster import dask_client

        with dask_client(self.scheduler, self.workers) as client:
            started = time.perf_counter()  # a local cluster's start-up is not the computation's
            self.prepare(client)
            writer = Together(self.data_writer(), self.figure)
            chunks = self.chunks(client)
            with self.companions(writer), self.overflows():
                self.non_finite = write_chunks(chunks, writer, self.progress(), self.stats)
        return writer, time.perf_counter() - started

    def prepare(self, client):
        """What comes before the output is opened (confint: the fit)."""

    def chunks(self, client):
        """(start, chunk) chunk by chunk, in order (a chunk as ``jaccli.io.parts`` says)."""
        raise NotImplementedError

    def companions(self, writer):
        """Other outputs, committed after ``writer`` or not at all (confint --leverage)."""
        return contextlib.nullcontext()


class Tabled(Run):
    """A command whose result is computed whole, then written as a table."""

    def compute(self):
        from jaccli.scale.cluster import dask_client

        with dask_client(self.scheduler, self.workers) as client:
            progress = self.progress()
            started = time.perf_counter()  # a local cluster's start-up is not the computation's
            try:
                with self.overflows():
                    self.result = self.calculate(client, progress.advance)
            finally:
                progress.close()
            seconds = time.perf_counter() - started
        return self.write_table(), seconds

    def write_table(self):
        """The table, and the figure of --plot, whole or not at all."""
        from jaccli.cli.plotting import table_figure
        from jaccli.io.writers import Together, written_whole

        figure = table_figure(self.plot, self.draw)
        with written_whole(Together(self.data_writer(), figure)) as writer:
            self.fill(writer)
        return writer

    def calculate(self, client, advance):
        """The result; ``advance(done)`` moves the progress bar."""
        raise NotImplementedError

    def fill(self, writer):
        raise NotImplementedError

    def draw(self):
        """The --plot figure of the result."""
        raise NotImplementedError


@contextlib.contextmanager
def overflows_counted():
    """An overflow inside the network is counted and reported once, not warned per chunk."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def write_chunks(chunks, writer, progress, stats=None):
    """Write each (start, chunk) of ``chunks`` (``jaccli.io.parts``) in order, then
    commit (abort on any error), advancing ``progress``; returns how many results
    are NaN or infinite."""
    from jaccli.io.parts import joined, non_finite, row_count
    from jaccli.io.writers import written_whole

    following = hasattr(chunks, "follow")  # a cluster's chunks report the cluster's progress
    if following:
        chunks.follow(progress.advance)
    count = 0
    try:
        with written_whole(writer):
            for start, chunk in chunks:
                writer.write(start, chunk)
                if stats is not None:
                    stats.update(joined(chunk))
                count += non_finite(chunk)
                if not following:
                    progress.advance(start + row_count(chunk))
    finally:
        progress.close()
    return count
