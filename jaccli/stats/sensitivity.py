"""Derivative-based global sensitivity from exact Jacobians, streamed over chunks.

For each output y_k and input x_j, over the points x_1..x_N:

* ``nu``       = E[(dy_k/dx_j)^2], the derivative-based global sensitivity
  measure (DGSM; Sobol' & Kucherenko 2009, "Derivative based global
  sensitivity measures and their link with global sensitivity indices",
  Math. Comput. Simul. 79);
* ``mean_abs`` = E|dy_k/dx_j| (Morris's mu*), ``mean`` = E[dy_k/dx_j];
* ``share``    = nu_kj / sum_j nu_kj;
* ``bound``    = an upper bound on the total Sobol' index S_T of x_j in y_k
  (Lamboni et al. 2013; Sobol' & Kucherenko 2009), from the Poincare
  inequality Var(f) <= C E[f'^2] of the input's distribution:
  uniform on [a, b]: C = (b - a)^2 / pi^2; normal with standard deviation s:
  C = s^2; S_T <= C nu / Var(y_k).

E is the average over the points, so ``nu`` is the measure of the
distribution the points are a sample of, and the bound holds when the
inputs are independent and each x_j has the distribution its bound names.
Var(y_k) and the inputs' variances are unbiased sample variances (ddof 1)
from the same points.

Streaming: ``SensitivityAccumulator.add`` takes one chunk (values,
Jacobian, points) at a time and keeps only sums of size (m, n) and
(B, m, n), so memory does not grow with N. Means and variances merge
chunk by chunk with Chan, Golub & LeVeque's update (no sum of squares minus
a squared sum, which cancels catastrophically when the mean is large).

Bootstrap confidence intervals (Poisson bootstrap; Hanley & MacGibbon 2006,
Chamandy et al. 2012): replicate b gives point i the weight w_ib ~ Poisson(1),
independently, instead of resampling N of the N points (the multinomial
counts, which need all N points at once). A replicate's nu is
sum_i w_ib d_i^2 / sum_i w_ib, accumulated per chunk as one matrix product
W^T D. The percentile interval at ``level`` is reported. The weights are
drawn from a counter-based generator (Philox) keyed by ``seed`` and indexed
by the row number of the point, so the replicates, and so the intervals, do
not depend on the chunk size or on the order the chunks arrive in (up to
the rounding of sums in another order).
"""

import os
from dataclasses import dataclass, field
from typing import List

import numpy as np

from jaccli import arguments
from jaccli.errors import JaccliError, ParameterError, param
from jaccli.extras import is_dask_array
from jaccli.io.selection import header_index
from jaccli.limits import check_memory
from jaccli.stats.confint import check_level
from jaccli.stats.moments import Moments

BOUNDS = param("bounds")  # the parameter the bounds' errors name

#: Bootstrap weights by table lookup: a 16-bit random integer v gives the
#: Poisson(1) quantile at (v + 1/2) / 2^16, so each probability P(w = k) is
#: Poisson(1)'s rounded to a multiple of 2^-16 (P(w >= 9), 1e-6, is dropped:
#: the weights have mean 1 and variance 1 within 1e-4). Four times cheaper
#: than an inverse CDF on doubles, and the weights are small exact integers.
_POISSON1_CDF = np.cumsum(np.exp(-1.0) / np.cumprod(np.r_[1.0, np.arange(1.0, 19.0)]))
_POISSON1_TABLE = np.searchsorted(_POISSON1_CDF, (np.arange(1 << 16) + 0.5) / (1 << 16),
                                  side="right").astype(np.float64)

#: Philox produces four 64-bit words per counter value: 16 weights.
_WEIGHTS_PER_COUNTER = 16

#: Default number of bootstrap replicates.
DEFAULT_BOOTSTRAP = 1000

#: Bytes of one chunk's bootstrap weights (rows x replicates doubles): the
#: default chunk shrinks when the replicates are many, to WEIGHT_ROWS at least.
WEIGHT_BYTES = 1 << 25
WEIGHT_ROWS = 64

#: Per-replicate sums held at once: the total, and the chunks in flight on the workers.
SUMS_IN_FLIGHT = 20

KINDS = ("uniform", "normal")


def poisson_weights(seed, start, stop, replicates):
    """Poisson(1) bootstrap weights (stop - start, replicates) of rows start..stop-1.

    Row i's weights are a function of (seed, i) alone: each row owns
    ceil(replicates / 16) consecutive Philox counter values, and the chunk's
    generator starts at the counter of its first row, so any chunking draws
    the same weights for the same row (on any platform: the words are read
    as little-endian 16-bit integers).
    """
    per_row = -(-replicates // _WEIGHTS_PER_COUNTER)
    rows = stop - start
    bits = np.random.Philox(key=seed, counter=[start * per_row, 0, 0, 0])
    words = bits.random_raw(rows * per_row * 4).astype("<u8", copy=False).view("<u2")
    return _POISSON1_TABLE[words.reshape(rows, per_row * _WEIGHTS_PER_COUNTER)[:, :replicates]]


@dataclass
class ChunkSums:
    """One chunk's contribution, computed apart (on a worker thread) and merged in order."""

    outputs: Moments  # of y (m,)
    inputs: Moments  # of x (n,), with the range
    derivatives: Moments  # of [d^2, |d|, d] (3, m, n)
    weighted: np.ndarray  # (B, 2 m n): sum_i w_ib [d_i^2, |d_i|]
    weight_totals: np.ndarray  # (B,): sum_i w_ib

    @classmethod
    def empty(cls, m, n, replicates):
        return cls(Moments(m), Moments(n, track_range=True), Moments((3, m, n)),
                   np.zeros((replicates, 2 * m * n)), np.zeros(replicates))

    def merge(self, other):
        """Fold in ``other``, the sums of the rows after these; returns self.
        (Merging into empty sums copies ``other`` exactly.)"""
        self.outputs.merge(other.outputs)
        self.inputs.merge(other.inputs)
        self.derivatives.merge(other.derivatives)
        self.weighted += other.weighted
        self.weight_totals += other.weight_totals
        return self


# ---------------------------------------------------------------- bounds


@dataclass
class InputBound:
    """The distribution an input's Sobol' bound assumes: uniform [low, high] or normal (sd)."""

    kind: str  # "uniform" or "normal"
    low: float = np.nan
    high: float = np.nan
    sd: float = np.nan
    source: str = "bounds"  # "bounds" (given by the user) or "points" (estimated from them)

    @property
    def poincare(self):
        """The Poincare constant C of Var(f) <= C E[f'^2] for this distribution."""
        if self.kind == "uniform":
            return (self.high - self.low) ** 2 / np.pi ** 2
        return self.sd ** 2

    @property
    def label(self):
        """How the output names this bound: 'uniform (points)', 'normal (bounds)'."""
        return f"{self.kind} ({self.source})"


def _number(text, item, what):
    try:
        value = float(text)
    except ValueError:
        raise ParameterError(f"{BOUNDS} {item!r}: {what} {text!r} is not a number") from None
    if not np.isfinite(value):
        raise ParameterError(f"{BOUNDS} {item!r}: {what} must be finite, not {text}")
    return value


def _parse_bound(item, text):
    """One input's bound: 'uniform:A:B', 'normal:SD', or a bare 'uniform'/'normal'."""
    parts = [p.strip() for p in text.split(":")]
    kind = parts[0].lower()
    if kind not in KINDS:
        raise ParameterError(f"{BOUNDS} {item!r}: unknown distribution {parts[0]!r}; "
                          f"use uniform:A:B or normal:SD")
    if len(parts) == 1:
        return InputBound(kind, source="points")
    if kind == "uniform":
        if len(parts) != 3:
            raise ParameterError(f"{BOUNDS} {item!r}: a uniform input takes two numbers, uniform:A:B")
        low, high = _number(parts[1], item, "A"), _number(parts[2], item, "B")
        if not low < high:
            raise ParameterError(f"{BOUNDS} {item!r}: uniform:A:B needs A < B (got {low:g}, {high:g})")
        return InputBound("uniform", low=low, high=high)
    if len(parts) != 2:
        raise ParameterError(f"{BOUNDS} {item!r}: a normal input takes one number, its standard "
                          f"deviation: normal:SD")
    sd = _number(parts[1], item, "SD")
    if not sd > 0:
        raise ParameterError(f"{BOUNDS} {item!r}: the standard deviation must be positive (got {sd:g})")
    return InputBound("normal", sd=sd)


def parse_bounds(bounds, input_names):
    """Each input's bound from ``bounds``: None, a string, or a list/dict of strings.

    Syntax (one string, items separated by commas):

    * one item, for every input: ``uniform:0:1``; or ``uniform`` or
      ``normal``: each input's range (min, max) or standard deviation
      taken from the points;
    * one item per input, in input order: ``uniform:0:1,normal:0.5``;
    * or by name, every input once: ``x1=uniform:0:1,x2=normal:0.5``.

    An item with no numbers (``x2=normal``) takes them from the points.
    None means ``uniform`` (the box the points span, as in Sobol' and
    Kucherenko's unit hypercube). Returns one ``InputBound`` per input.
    """
    names = list(input_names)
    if bounds is None:
        bounds = "uniform"
    if isinstance(bounds, dict):
        items = [f"{name}={text}" for name, text in bounds.items()]
    elif isinstance(bounds, str):
        items = [item.strip() for item in bounds.split(",")]
    else:
        items = [str(item).strip() for item in bounds]
    if any(not item for item in items):
        raise ParameterError(f"{BOUNDS} {bounds!r}: an empty item")
    if len(items) == 1 and "=" not in items[0]:
        return [_parse_bound(items[0], items[0]) for _ in names]
    named = ["=" in item for item in items]
    if any(named) and not all(named):
        raise ParameterError(f"{BOUNDS} {bounds!r}: name every input (x1=uniform:0:1,...) or none")
    if not any(named):
        if len(items) != len(names):
            raise ParameterError(f"{BOUNDS} gives {len(items)} bound(s); the model has {len(names)} "
                              f"inputs ({', '.join(names)}): give one per input, in that order")
        return [_parse_bound(item, item) for item in items]
    by_name = {}
    for item in items:
        key, text = (part.strip() for part in item.split("=", 1))
        index = header_index(names, key, BOUNDS, "input")  # matched like a header's names
        if index is None:
            raise ParameterError(f"{BOUNDS} {item!r}: no input named {key!r} "
                              f"(the inputs: {', '.join(names)})")
        name = names[index]
        if name in by_name:
            raise ParameterError(f"{BOUNDS}: input {name!r} is given twice")
        by_name[name] = _parse_bound(item, text)
    missing = [name for name in names if name not in by_name]
    if missing:
        raise ParameterError(f"{BOUNDS} gives {len(by_name)} of the {len(names)} inputs; "
                          f"missing: {', '.join(missing)}")
    return [by_name[name] for name in names]


def check_point_count(n_points, source="points"):
    if n_points < 2:
        raise JaccliError(f"{source}: sensitivity needs at least 2 points (got {n_points}): "
                          f"the output variance and the bounds need a spread")


def check_bootstrap(replicates, level):
    """At least one replicate in each tail of the percentile interval."""
    replicates = arguments.whole_number("bootstrap", replicates, 1,
                                         "a positive number of replicates")
    needed = int(np.ceil(2 / (1 - level) - 1e-9))
    if replicates < needed:
        raise ParameterError(f"{param('bootstrap')} {replicates} is too few for "
                             f"{param('level')} {level:g}: a percentile interval needs at "
                             f"least {needed} replicates")
    return replicates


# ---------------------------------------------------------------- the result


@dataclass
class SensitivityResult:
    """Per output k and input j (arrays of shape (m, n) unless noted)."""

    output_names: List[str]
    input_names: List[str]
    n_points: int
    nu: np.ndarray
    nu_lower: np.ndarray
    nu_upper: np.ndarray
    mean_abs: np.ndarray
    mean_abs_lower: np.ndarray
    mean_abs_upper: np.ndarray
    mean: np.ndarray
    share: np.ndarray
    bound: np.ndarray  # NaN for an output that is constant over the points
    output_variance: np.ndarray  # (m,)
    bounds: List[InputBound]  # per input, with the numbers used
    level: float
    bootstrap: int
    seed: int
    constant_outputs: List[str] = field(default_factory=list)

    #: The numeric columns of the table (one row per (output, input), output-major).
    NUMERIC = ("nu", "nu_lower", "nu_upper", "mean_abs", "mean_abs_lower", "mean_abs_upper",
               "mean", "share", "output_variance", "bound")
    COLUMNS = ("output", "input") + NUMERIC + ("bound_kind",)

    def warnings(self):
        """What the reader must know: outputs with no bound, results that overflowed."""
        notes = [f"{name} is constant over the points (variance 0): nu is reported, "
                 f"the Sobol' bound is not (it divides by the variance)"
                 for name in self.constant_outputs]
        if not np.isfinite(self.nu).all():
            notes.append("some derivatives are NaN or infinite (the network overflows at some "
                         "points: an exp layer, extreme inputs, or float32?): the statistics of "
                         "those outputs are NaN or infinite")
        return notes

    def column(self, name):
        """A numeric column of the table, flattened output-major ((m * n,))."""
        if name == "output_variance":
            return np.repeat(self.output_variance, len(self.input_names))
        return np.asarray(getattr(self, name)).reshape(-1)

    def rows(self):
        """The table as dicts, one per (output, input), output-major; an output with
        no bound (constant over the points) has bound None."""
        kinds = [b.label for b in self.bounds]
        table = {name: self.column(name) for name in self.NUMERIC}
        out, i = [], 0
        for output in self.output_names:
            for j, name in enumerate(self.input_names):
                row = {"output": output, "input": name}
                row.update({key: float(values[i]) for key, values in table.items()})
                if output in self.constant_outputs:
                    row["bound"] = None
                row["bound_kind"] = kinds[j]
                out.append(row)
                i += 1
        return out


# ---------------------------------------------------------------- the accumulator


class SensitivityAccumulator:
    """Sums over chunks of (values, Jacobian, points) for the DGSM table.

    ``add`` takes a chunk; or, to spread the work over threads, each worker
    calls ``chunk_sums`` (which reads only the settings) and the caller
    ``merge``s the results.
    """

    def __init__(self, input_names, output_names, bootstrap=DEFAULT_BOOTSTRAP, level=0.95,
                 bounds=None, seed=0):
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.n, self.m = len(self.input_names), len(self.output_names)
        self.level = check_level(level)
        self.bootstrap = check_bootstrap(bootstrap, self.level)
        self.seed = arguments.whole_number("seed", seed, 0, "a non-negative integer")
        self.bounds = parse_bounds(bounds, self.input_names)
        check_memory(SUMS_IN_FLIGHT * 8 * self.bootstrap * (2 * self.m * self.n + 1 + WEIGHT_ROWS),
                     f"{param('bootstrap')} {self.bootstrap} for {self.m} output(s) x "
                     f"{self.n} input(s)", "use fewer replicates")
        self.total = ChunkSums.empty(self.m, self.n, self.bootstrap)

    def chunk_sums(self, values, jacobian, points, start):
        """The sums of one chunk: values (N, m), jacobian (N, m, n), points (N, n) at
        rows start..start+N-1 of the whole point set (the row numbers key the
        bootstrap weights)."""
        values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
        jacobian = np.asarray(jacobian, dtype=np.float64)
        points = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
        rows = len(points)
        if (values.shape != (rows, self.m) or jacobian.shape != (rows, self.m, self.n)
                or points.shape != (rows, self.n)):
            raise ValueError(f"chunk shapes {values.shape}, {jacobian.shape}, {points.shape} do "
                             f"not fit {self.m} output(s) and {self.n} input(s)")
        squares, magnitudes = jacobian ** 2, np.abs(jacobian)
        weights = poisson_weights(self.seed, start, start + rows, self.bootstrap)
        features = np.concatenate([squares.reshape(rows, -1), magnitudes.reshape(rows, -1)], axis=1)
        return ChunkSums(Moments.of(values), Moments.of(points, track_range=True),
                         Moments.of(np.stack([squares, magnitudes, jacobian], axis=1)),
                         weights.T @ features, weights.sum(axis=0))

    def merge(self, sums):
        """Fold in the sums of the rows after those merged so far."""
        self.total.merge(sums)

    def add(self, values, jacobian, points, start=None):
        """One chunk; ``start`` (its first row) defaults to the row after the last chunk."""
        start = self.total.outputs.count if start is None else int(start)
        self.merge(self.chunk_sums(values, jacobian, points, start))

    def result(self):
        """The table; errors when fewer than 2 points were added."""
        total = self.total
        n_points = total.outputs.count
        check_point_count(n_points)
        nu, mean_abs, mean = total.derivatives.mean
        with np.errstate(invalid="ignore", divide="ignore"):
            replicates = (total.weighted / total.weight_totals[:, None]).reshape(
                self.bootstrap, 2, self.m, self.n)
            share = nu / nu.sum(axis=1, keepdims=True)
        tails = [(1 - self.level) / 2, (1 + self.level) / 2]
        # A replicate whose weights are all 0 (likely only with a handful of points) is NaN: skipped.
        (nu_lo, abs_lo), (nu_hi, abs_hi) = np.nanquantile(replicates, tails, axis=0)
        variance = total.outputs.variance
        # Constant up to rounding: a spread below a few ulps of the values is noise, not a variance.
        scale = np.maximum(np.abs(total.outputs.mean), np.sqrt(np.finfo(float).tiny))
        constant = variance <= (64 * np.finfo(float).eps * scale) ** 2
        bounds = self._bounds_with_numbers()
        poincare = np.array([b.poincare for b in bounds])
        with np.errstate(invalid="ignore", divide="ignore"):
            bound = poincare[None, :] * nu / variance[:, None]
        bound[constant] = np.nan
        return SensitivityResult(
            self.output_names, self.input_names, n_points, nu, nu_lo, nu_hi, mean_abs, abs_lo,
            abs_hi, mean, share, bound, variance, bounds, self.level, self.bootstrap, self.seed,
            [name for name, c in zip(self.output_names, constant) if c])

    def _bounds_with_numbers(self):
        """The bounds, those to be taken from the points filled in from them."""
        out, inputs = [], self.total.inputs
        for j, b in enumerate(self.bounds):
            if b.source == "points":
                b = InputBound(b.kind, low=float(inputs.low[j]), high=float(inputs.high[j]),
                               sd=float(np.sqrt(inputs.variance[j])), source="points")
            out.append(b)
        return out


def sensitivity(model, points, bootstrap=DEFAULT_BOOTSTRAP, level=0.95, bounds=None, seed=0,
                chunk_size=None, source="points", threads=None, progress=None, client=None):
    """The DGSM table of ``model`` over ``points`` (array-like (N, n), a points
    file's path, read a chunk at a time, or a Dask array), streamed through the
    model's chunk loop.

    Each chunk's values, Jacobian and sums (bootstrap included) are computed
    on a worker thread; the sums merge in row order. With ``client`` (a
    ``distributed.Client``), blocks of chunks are computed on the cluster
    (``block_sums``) and merged in row order here: the result equals the
    in-process one to rounding (bitwise when there is one block). A Dask
    array is reduced by the Dask scheduler in use (``dask_array_sums``).
    ``bounds``: see ``parse_bounds`` (default: uniform on the points' range).
    ``progress``, if given, is called with the number of points done.
    Returns a ``SensitivityResult``.
    """
    chunk_size = arguments.count("chunk_size", chunk_size)
    threads = arguments.count("threads", threads)
    accumulator = SensitivityAccumulator(model.input_names, model.output_names, bootstrap, level,
                                         bounds, seed)
    if isinstance(points, (str, os.PathLike)):
        source = str(points)
    points = model.points_from(points, source)  # held whole: checked whole, up front
    check_point_count(len(points), source)
    # a chunk's (rows, B) bootstrap weights stay under WEIGHT_BYTES
    chunk = int(chunk_size or min(model.chunk_size_for("jacobian"),
                                  max(WEIGHT_ROWS, WEIGHT_BYTES // (8 * accumulator.bootstrap))))
    if is_dask_array(points):
        chunks = [(0, dask_array_sums(model, accumulator, points, chunk))]
    elif client is not None:
        from jaccli.scale.cluster import ClusterChunks, task_rows

        chunks = ClusterChunks(client, block_sums, (model, accumulator, chunk), points,
                               task_rows(chunk), source, with_start=True)
    else:
        chunks = iter_chunk_sums(model, accumulator, points, chunk, source, threads)
    following = hasattr(chunks, "follow")  # a cluster's chunks report the cluster's progress
    if following and progress is not None:
        chunks.follow(progress)
    for start, sums in chunks:
        accumulator.merge(sums)
        if progress is not None and not following:
            progress(start + sums.outputs.count)
    return accumulator.result()


def iter_chunk_sums(model, accumulator, points, chunk, source="points", threads=None, first_row=0):
    """Yield (start, ``ChunkSums``) for every chunk of ``points`` in order, computed on
    ``threads`` worker threads; the points are rows first_row.. of the whole set."""
    def compute(x, workspace, start):
        both = model.compute_chunk_together(("value", "jacobian"), x, work=workspace)  # one sweep
        return accumulator.chunk_sums(both["value"], both["jacobian"], x, first_row + start)

    return model.map_chunks(compute, points, chunk, source, threads, with_start=True)


def block_sums(model, accumulator, chunk, x, first_row):
    """A cluster task: the ``ChunkSums`` of the rows ``x`` (rows first_row.. of the whole
    set), chunk by chunk as in-process, merged in order on one thread. Only the
    accumulator's settings are read."""
    from jaccli.engine.chunks import single_threaded_blas

    total = None
    with single_threaded_blas():
        for _, sums in iter_chunk_sums(model, accumulator, x, chunk, threads=1,
                                       first_row=first_row):
            total = sums if total is None else total.merge(sums)
    return total or ChunkSums.empty(accumulator.m, accumulator.n, accumulator.bootstrap)


def merged(left, right):
    """Two neighbouring blocks' sums as one (a task of the tree)."""
    return left.merge(right)


def dask_array_sums(model, accumulator, X, chunk):
    """The ``ChunkSums`` of a Dask array's rows: one ``block_sums`` task per block of
    rows (each block checked as the CLI's are), merged as a tree of neighbours."""
    import dask

    from jaccli.scale.tasks import compute_slice

    if X.ndim != 2 or X.shape[1] != model.n_inputs:
        raise JaccliError(f"points: expected shape (N, {model.n_inputs}), got {X.shape}")
    blocks = X.rechunk({1: -1}).to_delayed()[:, 0]
    stops = np.cumsum(X.chunks[0])
    held = dask.delayed((model, accumulator, chunk), pure=True)
    level = [dask.delayed(compute_slice, pure=True)(block_sums, held, block, int(stop - rows),
                                                    int(stop), "points", True)
             for block, stop, rows in zip(blocks, stops, X.chunks[0])]
    while len(level) > 1:  # the tree: merge neighbours until one is left
        level = [dask.delayed(merged, pure=True)(*level[i:i + 2]) if i + 1 < len(level)
                 else level[i] for i in range(0, len(level), 2)]
    return level[0].compute()
