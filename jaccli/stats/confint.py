"""Confidence and prediction intervals of a least-squares-fitted network.

The network is treated as any nonlinear regression model y = f(x; theta) + e
fitted by least squares (Rivals & Personnaz, 2000, "Construction of confidence
intervals for neural networks based on least squares estimation", Neural
Networks 13). With Z the (N_train, q) Jacobian of the outputs with respect to
the parameters at the training inputs, r the residuals (target - f) and z the
parameter gradient at a query point:

    s^2 = SSE / (N_train - rank Z)
    se  = s * sqrt(z^T (Z^T Z)^+ z)
    CI  = f(x) +- t_{N_train - rank, (1 + level)/2} * se
    PI  = f(x) +- t_{N_train - rank, (1 + level)/2} * s * sqrt(1 + z^T (Z^T Z)^+ z)

How it is computed (Z^T Z is never formed: forming it squares the condition
number):

* Z is reduced chunk by chunk to its triangular factor R (Z = Q R, q x q)
  by a tall-skinny QR: the stored R is stacked on the next block of rows of
  Z and re-factorised. Only R and one block of Z are in memory, so N_train
  is unbounded; the limit is the q x q factor per output (8 q^2 bytes), see
  ``MAX_FACTOR_BYTES``.
* R = U_R S V^T is an SVD with the same singular values S and right singular
  vectors V as Z. The numerical rank is the number of singular values above
  ``S.max() * max(N_train, q) * eps`` (NumPy's ``matrix_rank`` default).
* With W = V_r / S_r (q x rank), z^T (Z^T Z)^+ z = ||W^T z||^2, and the
  leverage of training point k is h_kk = ||W^T z_k||^2 = ||U_r[k]||^2.
  sum_k h_kk = rank.
* The approximate leave-one-out residual of training point k is
  r_k / (1 - h_kk); the leave-one-out score is sqrt(mean of their squares).

Multi-output networks: each output is treated as its own regression (its own
Z = dy_k/dtheta, its own residuals and its own s), i.e. the noise of the
outputs is assumed independent; the intervals are marginal, per output.

The intervals are valid, to first order, for a least-squares fit at (or near)
a minimum of the SSE with homoscedastic, independent noise; they say nothing
about a network trained with early stopping far from a minimum, with weight
decay, or with a non-squared loss.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy.special import stdtrit  # the t quantile; scipy.stats would add ~1 s of imports

from jaccli import arguments
from jaccli.errors import JaccliError, ParameterError, param

#: Total size of the q x q triangular factors (one per output) that confint
#: keeps in memory. q = 10,000 parameters and one output needs 800 MB.
MAX_FACTOR_BYTES = 2 * 1024**3

#: A full-rank Z whose condition number exceeds this gets a warning: its
#: weakest parameter directions are barely determined by the data and the
#: standard errors along them are unreliable.
ILL_CONDITIONED = 1e8

_EPS = np.finfo(np.float64).eps


def check_level(level):
    """The confidence level must lie in the open interval (0, 1)."""
    return arguments.fraction("level", level)


def check_factor_memory(q, n_outputs=1):
    need = 8 * q * q * n_outputs
    if need > MAX_FACTOR_BYTES:
        raise JaccliError(
            f"confint needs a {q} x {q} triangular factor of the parameter Jacobian "
            f"per output ({need / 1024**3:.1f} GiB for {n_outputs} output(s)); "
            f"the limit is {MAX_FACTOR_BYTES / 1024**3:.0f} GiB (at most about "
            f"{int(np.sqrt(MAX_FACTOR_BYTES / 8 / n_outputs))} parameters)"
        )


@dataclass
class FitStatistics:
    """What the SVD of Z says about one output's least-squares fit."""

    n_train: int
    q: int  # number of parameters (columns of Z)
    rank: int
    singular_values: np.ndarray  # the min(N_train, q) singular values, descending
    tolerance: float  # singular values above it count towards the rank
    sse: float
    W: np.ndarray = field(repr=False)  # (q, rank): V_r / S_r

    @property
    def dof(self):
        return self.n_train - self.rank

    @property
    def s2(self):
        return self.sse / self.dof

    @property
    def s(self):
        return float(np.sqrt(self.s2))

    @property
    def condition_number(self):
        """S_max / S_min over all min(N_train, q) singular values (inf if one is 0)."""
        S = self.singular_values
        if S.size == 0 or S[-1] == 0:
            return float("inf")
        return float(S[0] / S[-1])

    @property
    def rank_deficient(self):
        return self.rank < self.q

    @property
    def ill_conditioned(self):
        return not self.rank_deficient and self.condition_number > ILL_CONDITIONED

    def gain(self, z):
        """z^T (Z^T Z)^+ z for each row of z (n, q): the squared norm of W^T z."""
        g = np.asarray(z, dtype=np.float64) @ self.W
        return np.einsum("ij,ij->i", g, g)

    def warnings(self):
        out = []
        if self.rank_deficient:
            out.append(
                f"Z is rank-deficient: rank {self.rank} < q = {self.q} parameters "
                f"(redundant parameters, e.g. duplicate or dead hidden units); the "
                f"pseudo-inverse is used and the degrees of freedom are "
                f"N_train - rank = {self.dof}"
            )
        elif self.ill_conditioned:
            out.append(
                f"Z is ill-conditioned (condition number {self.condition_number:.3g}): "
                f"some parameter directions are barely determined by the data and "
                f"the standard errors depend strongly on them"
            )
        return out


class FitAccumulator:
    """Builds FitStatistics from Z and the residuals given one block of rows at a time.

    Z^T Z is never formed: the rows are folded into a triangular factor R by
    repeated QR (a tall-skinny QR), whose SVD gives Z's singular values and
    right singular vectors. Memory: R (q x q) plus one buffered block.
    """

    def __init__(self, q, block_rows=None):
        self.q = int(q)
        check_factor_memory(self.q)
        self._R = np.zeros((0, self.q))
        self._pending = []
        self._pending_rows = 0
        # Re-factorise once the buffer is several times the size of R:
        # the QR costs O((rows + q) q^2), so small blocks would waste it.
        self._block_rows = block_rows or max(4 * self.q, 2048)
        self.n_train = 0
        self.sse = 0.0

    def add(self, Z, residuals):
        Z = np.asarray(Z, dtype=np.float64)
        r = np.asarray(residuals, dtype=np.float64).reshape(-1)
        if Z.ndim != 2 or Z.shape[1] != self.q or Z.shape[0] != r.shape[0]:
            raise ValueError(f"Z must be (N, {self.q}) and residuals (N,); got {Z.shape}, {r.shape}")
        self.n_train += Z.shape[0]
        self.sse += float(r @ r)
        self._pending.append(Z)
        self._pending_rows += Z.shape[0]
        if self._pending_rows >= self._block_rows:
            self.fold()

    def fold(self):
        if not self._pending:
            return
        stacked = np.vstack([self._R] + self._pending)
        self._pending, self._pending_rows = [], 0
        self._R = np.linalg.qr(stacked, mode="r")

    def merge(self, other):
        """Take in another accumulator's rows through its factor R: a step of a tree
        reduction (blocks of rows folded apart, then merged pairwise)."""
        other.fold()
        self.n_train += other.n_train
        self.sse += other.sse
        self._pending.append(other._R)
        self._pending_rows += other._R.shape[0]
        self.fold()
        return self

    def finish(self):
        self.fold()
        if self.n_train == 0:
            raise JaccliError("confint: the training set has no points")
        # The singular values of R are those of Z (Z = Q R, Q orthonormal).
        _, S, Vt = np.linalg.svd(self._R, full_matrices=False)
        tol = float(S.max() * max(self.n_train, self.q) * _EPS) if S.size else 0.0
        rank = int(np.count_nonzero(S > tol))
        if self.n_train <= rank:
            raise JaccliError(
                f"confint: no residual degrees of freedom: N_train = {self.n_train} "
                f"training points <= rank of the parameter Jacobian Z = {rank}, so the "
                f"noise variance cannot be estimated (use more training points than "
                f"the network has effective parameters)"
            )
        W = Vt[:rank].T / S[:rank]
        return FitStatistics(
            n_train=self.n_train, q=self.q, rank=rank, singular_values=S,
            tolerance=tol, sse=self.sse, W=W,
        )


def t_quantile(stats, level):
    return float(stdtrit(stats.dof, (1.0 + check_level(level)) / 2.0))


def intervals(values, z_query, stats, level=0.95):
    """Intervals of one output at the query points.

    values: (N,) the model's output; z_query: (N, q) its parameter gradient.
    Returns a dict of (N,) arrays: value, se, lower, upper, pred_lower, pred_upper.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    t = t_quantile(stats, level)
    g = stats.gain(z_query)
    se = stats.s * np.sqrt(g)
    half = t * se
    pred_half = t * stats.s * np.sqrt(1.0 + g)
    return {
        "value": values,
        "se": se,
        "lower": values - half,
        "upper": values + half,
        "pred_lower": values - pred_half,
        "pred_upper": values + pred_half,
    }


def leverages(Z, stats):
    """h_kk = z_k^T (Z^T Z)^+ z_k for the training rows Z (N, q)."""
    return stats.gain(Z)


def loo_residuals(residuals, h):
    """Approximate leave-one-out residuals r_k / (1 - h_kk) (inf where h_kk = 1)."""
    residuals = np.asarray(residuals, dtype=np.float64)
    one_minus = 1.0 - np.asarray(h, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = residuals / one_minus
    # A leverage of 1 (within rounding) means the point alone determines a
    # parameter direction: its leave-one-out residual is unbounded.
    out[np.abs(one_minus) <= 1e3 * _EPS] = np.inf
    return out


def loo_score(loo):
    """Rivals & Personnaz's approximate leave-one-out score sqrt(mean(loo^2))."""
    loo = np.asarray(loo, dtype=np.float64)
    return float(np.sqrt(np.mean(loo * loo)))


# --- a model and its training set -----------------------------------------------

#: Z blocks up to this many bytes are kept from the first pass (the fit) for
#: the second (the leverages); beyond it they are computed again.
KEEP_Z_BYTES = 256 * 1024**2


@dataclass
class ModelFit:
    """One FitStatistics per output, and the training-set diagnostics."""

    stats: list  # [FitStatistics] per output
    residuals: np.ndarray  # (N_train, m): target - f
    leverages: np.ndarray  # (N_train, m)
    loo_residuals: np.ndarray  # (N_train, m)
    masks: np.ndarray  # (m, P): the parameters that can move each output
    X_train: np.ndarray = field(default=None, repr=False)  # (N_train, n)

    @property
    def loo_scores(self):
        return [loo_score(self.loo_residuals[:, k]) for k in range(self.loo_residuals.shape[1])]

    def warnings(self, output_names):
        """What a user must hear about this fit (rank, conditioning, leverage 1), as lines."""
        out = [f"({y}) {warning}" for y, st in zip(output_names, self.stats)
               for warning in st.warnings()]
        if not np.all(np.isfinite(self.loo_residuals)):
            out.append("some training points have leverage 1 (they alone fix a parameter "
                       "direction): their leave-one-out residual, and the LOO score, are infinite")
        return out


def output_parameter_masks(model):
    """For each output, which parameters can move it: (m, P) booleans.

    In a multi-output network the last layer's weights and bias of output j
    do not touch output k != j (unless the last layer's activation couples its units, as softmax
    does): those columns of output k's Z are zero by construction and
    are not counted in its q. (Columns that are zero for other reasons, e.g.
    a dead relu unit, stay in q and make Z rank-deficient, as they should.)
    """
    m = len(model.output_names)
    last = model.network.layers[-1]
    mapping = model.assembly.parameter_map()
    if m == 1 or last.couples_units:
        return np.ones((m, model.n_parameters), dtype=bool)
    if mapping is None:  # the engine's parameters are the file's: the last two tensors
        return _last_layer_masks(model.parameter_table, last, m, model.assembly.layout)
    # The engine's folded parameters (last layer: kernel (in, m) then bias), then back
    # to the file's tensors: one moves output k if any folded parameter it feeds does.
    folded = np.ones((m, mapping.shape[0]), dtype=bool)
    kernel_size = last.kernel.size
    bias_size = 0 if last.bias is None else m
    start = mapping.shape[0] - kernel_size - bias_size
    owner = np.concatenate([np.tile(np.arange(m), kernel_size // m), np.arange(bias_size)])
    folded[:, start:] = owner[None, :] == np.arange(m)[:, None]
    return (folded.astype(np.float64) @ abs(mapping)) > 0


def _last_layer_masks(table, last, m, layout):
    masks = np.ones((m, sum(p.size for p in table)), dtype=bool)
    kernel_info = table[-2] if last.bias is not None else table[-1]
    out_axis = 0 if layout == "out_in" else 1
    owner = np.indices(kernel_info.shape)[out_axis].ravel()  # the output of each kernel entry
    for k in range(m):
        masks[k, kernel_info.offset:kernel_info.offset + kernel_info.size] = owner == k
        if last.bias is not None:
            bias_info = table[-1]
            masks[k, bias_info.offset:bias_info.offset + bias_info.size] = np.arange(m) == k
    return masks


def fit_model(model, X_train, Y_train, chunk_size=None, source=None):
    """Fit statistics of every output of ``model`` on a training set.

    X_train (N, n), Y_train (N, m). Z is computed one chunk of training points
    at a time and folded into the per-output triangular factors; the
    leverages need a second pass over Z, which reuses the first pass's blocks
    when they fit in ``KEEP_Z_BYTES`` and recomputes them otherwise. An error
    names ``source`` (the training file) when given.
    """
    try:
        return _fit_model(model, np.asarray(X_train), Y_train, chunk_size)
    except JaccliError as exc:  # the fit's problems are the training set's
        if source is None:
            raise
        raise JaccliError(f"{source}: {exc.marked}") from None


def _fit_model(model, X_train, Y_train, chunk_size):
    Y_train = np.asarray(Y_train, dtype=np.float64)
    N, m = Y_train.shape
    masks = output_parameter_masks(model)
    check_factor_memory(int(masks.sum(axis=1).max()), m)
    chunk = model.chunk_points("param_jacobian", chunk_size, len(X_train))
    accs = [FitAccumulator(int(masks[k].sum())) for k in range(m)]
    residuals = np.empty((N, m))
    kept, kept_bytes = [], 0
    for start, (Z, values) in model.map_chunks(z_and_values(model), X_train, chunk):
        residuals[start:start + chunk] = fold_rows(accs, masks, Z, values,
                                                   Y_train[start:start + chunk])
        if kept is not None:
            kept_bytes += Z.nbytes
            kept = kept + [Z] if kept_bytes <= KEEP_Z_BYTES else None
    stats = [acc.finish() for acc in accs]
    blocks = enumerate(kept) if kept is not None else (
        (i, Z) for i, (_, (Z, _)) in enumerate(model.map_chunks(z_and_values(model), X_train, chunk)))
    lev = np.empty((N, m))
    for i, Z in blocks:
        lev[i * chunk:(i + 1) * chunk] = chunk_leverages(stats, masks, Z)
    loo = np.column_stack([loo_residuals(residuals[:, k], lev[:, k]) for k in range(m)])
    return ModelFit(stats, residuals, lev, loo, masks, X_train)


def fold_rows(accumulators, masks, Z, values, targets):
    """Fold a chunk of training rows (its Z (c, m, P) and values) into each output's
    accumulator; returns the residuals (c, m)."""
    r = targets - values
    for k, acc in enumerate(accumulators):
        acc.add(Z[:, k, masks[k]], r[:, k])
    return r


def chunk_leverages(stats, masks, Z):
    """The leverages (c, m) of a chunk of training rows, given its Z (c, m, P)."""
    return np.column_stack([st.gain(Z[:, k, masks[k]]) for k, st in enumerate(stats)])


def z_and_values(model):
    """The chunk function of ``Model.map_chunks``: (Z (c, m, P), f (c, m)) in float64."""
    def compute(x, workspace):
        Z = model.compute_chunk("param_jacobian", x, work=workspace)
        values = model.compute_chunk("value", x, work=workspace)
        return np.asarray(Z, dtype=np.float64), np.asarray(values, dtype=np.float64)

    return compute


INTERVAL_FIELDS = ("value", "se", "lower", "upper", "pred_lower", "pred_upper")
#: The CSV column suffix of each field: output y gives y, y_se, y_lower, ...
COLUMN_SUFFIX = {"value": "", "se": "_se", "lower": "_lower", "upper": "_upper",
                 "pred_lower": "_pred_lower", "pred_upper": "_pred_upper"}


def model_intervals(model, fit, X, level=0.95, workspace=None):
    """Intervals of every output at the query points X (one chunk, in the model's dtype).

    Returns an (N, m, 6) array; the last axis in ``INTERVAL_FIELDS`` order.
    """
    level = check_level(level)
    Z, values = z_and_values(model)(X, workspace)
    out = np.empty(values.shape + (len(INTERVAL_FIELDS),))
    for k, st in enumerate(fit.stats):
        ci = intervals(values[:, k], Z[:, k, fit.masks[k]], st, level)
        for f, name in enumerate(INTERVAL_FIELDS):
            out[:, k, f] = ci[name]
    return out


def interval_columns(model):
    """The CSV columns of the intervals: per output y, y, y_se, y_lower, ... ."""
    return [f"{y}{COLUMN_SUFFIX[f]}" for y in model.output_names for f in INTERVAL_FIELDS]


def iter_intervals(model, fit, points, level=0.95, chunk_size=None, source="points", threads=None):
    """Yield (start, (c, m, 6) intervals) chunk by chunk, in order: ``points`` may be
    read lazily (a large file streams); each chunk is checked for finite numbers."""
    level = check_level(level)
    chunk = model.chunk_points("param_jacobian", chunk_size, len(points))

    def compute(x, workspace):
        return model_intervals(model, fit, x, level, workspace)

    return model.map_chunks(compute, points, chunk, source, threads)


# --- the training file ---------------------------------------------------------------


def read_training_set(path, model, targets=None, stdin=None, fmt=None, columns=None):
    """(X (N, n), Y (N, m)) from a training file (``-``: ``stdin``), by the points'
    column rule (``io.selection``): the inputs, picked by ``columns``
    or by header name, then the targets, picked by ``targets``
    (names or numbers from 1) or named as the spec's outputs; with no
    header, exactly n + m columns, the inputs then the targets."""
    rows, source = training_table(path, model, targets, stdin, fmt, columns)
    return split_training_rows(rows, source, model.n_inputs)


def split_training_rows(rows, source, n_inputs):
    """(X, Y) of a training table's rows, read whole and checked finite."""
    from jaccli.io.finite import check_finite_points

    data = np.asarray(rows, dtype=np.float64)
    check_finite_points(data, source)
    return data[:, :n_inputs], data[:, n_inputs:]


def training_table(path, model, targets=None, stdin=None, fmt=None, columns=None):
    """(rows, source name): a training file's inputs then targets, (N, n + m), chosen as
    ``read_training_set`` says but not read whole: a large file (NPY, Zarr, a big
    CSV) is read a chunk at a time (unchecked: the chunks are checked as read)."""
    from jaccli.io.points import input_columns, open_points
    from jaccli.io.selection import Wanted, placeholder_names

    _check_target_count(model, targets)
    inputs = input_columns(model.input_names, columns, option=param("train_columns"))
    outputs = list(model.output_names)
    wanted_targets = Wanted(outputs, what="target", picks=list(targets) if targets else None,
                            option=param("targets"),
                            placeholders=not targets and placeholder_names(outputs, "y"))
    table = open_points(path, fmt, stdin)
    return table.take([inputs, wanted_targets]), table.source


def _check_target_count(model, targets):
    if targets and len(targets) != model.n_outputs:
        raise ParameterError(f"{param('targets')} given {len(targets)} time(s); the model has "
                          f"{model.n_outputs} outputs ({', '.join(model.output_names)}): "
                          f"give one target column per output, in that order")


def training_set(model, train, targets=None, stdin=None, fmt=None, columns=None):
    """(X (N, n), Y (N, m)) from ``train``: a training file's path (``-``: ``stdin``)
    or an (X, Y) pair. ``targets``: the file's target column of each output, in
    output order (default: the model's output names); ``fmt`` and ``columns``:
    the file's format and its input columns (see ``read_training_set``)."""
    _check_target_count(model, targets)
    if isinstance(train, (tuple, list)):
        X_train = model.as_points(train[0], "the training set")
        return X_train, np.asarray(train[1], dtype=np.float64).reshape(len(X_train), -1)
    return read_training_set(str(train), model, targets, stdin, fmt, columns)


@dataclass
class ConfintResult:
    """What ``jaccli.confint`` returns: the intervals and the fit behind them."""

    intervals: np.ndarray  # (N, m, 6): the last axis in INTERVAL_FIELDS order
    fit: ModelFit  # per output: rank, condition number, s, leverages, LOO residuals
    level: float
    columns: list  # the CSV column of each (output, field): y, y_se, y_lower, ...

    def table(self):
        """(N, 6 m): one column per name in ``columns``."""
        return self.intervals.reshape(len(self.intervals), -1)

    def __getitem__(self, column):
        """One column by name, e.g. result["y_upper"]."""
        return self.table()[:, self.columns.index(column)]


def confint(model, train, points, level=0.95, targets=None, chunk_size=None):
    """Confidence and prediction intervals of ``model`` at ``points`` (array-like
    (N, n), or a points file's path), fitted on ``train`` (a training file's path,
    or an (X, Y) pair). See ``training_set`` for ``targets``."""
    level, chunk_size = check_level(level), arguments.count("chunk_size", chunk_size)
    X_train, Y_train = training_set(model, train, targets)
    fit = fit_model(model, X_train, Y_train, chunk_size,
                    None if isinstance(train, (tuple, list)) else str(train))
    points = model.points_from(points)
    blocks = [block for _, block in iter_intervals(model, fit, points, level, chunk_size)]
    return ConfintResult(np.concatenate(blocks), fit, level, interval_columns(model))
