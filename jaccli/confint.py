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
from scipy import stats as _stats

from .errors import JaccliError

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
    level = float(level)
    if not (0.0 < level < 1.0):
        raise JaccliError(f"--level must lie strictly between 0 and 1 (got {level:g})")
    return level


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
            self._fold()

    def _fold(self):
        if not self._pending:
            return
        stacked = np.vstack([self._R] + self._pending)
        self._pending, self._pending_rows = [], 0
        self._R = np.linalg.qr(stacked, mode="r")

    def finish(self):
        self._fold()
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


def fit_statistics(Z, residuals):
    """FitStatistics of one output from its whole (N_train, q) Z and residuals (N_train,)."""
    Z = np.asarray(Z, dtype=np.float64)
    acc = FitAccumulator(Z.shape[1])
    acc.add(Z, residuals)
    return acc.finish()


def t_quantile(stats, level):
    return float(_stats.t.ppf((1.0 + check_level(level)) / 2.0, stats.dof))


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

    @property
    def loo_scores(self):
        return [loo_score(self.loo_residuals[:, k]) for k in range(self.loo_residuals.shape[1])]


def output_parameter_masks(model):
    """For each output, which parameters can move it: (m, P) booleans.

    In a multi-output network the last layer's weights and bias of output j
    do not touch output k != j (unless the last layer is a softmax, which
    couples them): those columns of output k's Z are zero by construction and
    are not counted in its q. (Columns that are zero for other reasons, e.g.
    a dead relu unit, stay in q and make Z rank-deficient, as they should.)
    """
    P = int(model.parameter_vector().size)
    m = len(model.output_names)
    masks = np.ones((m, P), dtype=bool)
    last = model.network.layers[-1]
    if m == 1 or last.is_softmax:
        return masks
    table = model.parameter_table
    kernel_info = table[-2] if last.bias is not None else table[-1]
    out_axis = 0 if model.layout == "out_in" else 1
    owner = np.indices(kernel_info.shape)[out_axis].ravel()  # the output of each kernel entry
    for k in range(m):
        masks[k, kernel_info.offset:kernel_info.offset + kernel_info.size] = owner == k
        if last.bias is not None:
            bias_info = table[-1]
            masks[k, bias_info.offset:bias_info.offset + bias_info.size] = np.arange(m) == k
    return masks


def fit_model(model, X_train, Y_train, chunk_size=None):
    """Fit statistics of every output of ``model`` on a training set.

    X_train (N, n), Y_train (N, m). Z is computed one chunk of training points
    at a time and folded into the per-output triangular factors; the
    leverages need a second pass over Z, which reuses the first pass's blocks
    when they fit in ``KEEP_Z_BYTES`` and recomputes them otherwise.
    """
    X_train = np.asarray(X_train)
    Y_train = np.asarray(Y_train, dtype=np.float64)
    N, m = Y_train.shape
    masks = output_parameter_masks(model)
    check_factor_memory(int(masks.sum(axis=1).max()), m)
    chunk = int(chunk_size or model.chunk_size_for("param_jacobian"))
    accs = [FitAccumulator(int(masks[k].sum())) for k in range(m)]
    residuals = np.empty((N, m))
    kept, kept_bytes = [], 0
    for start in range(0, N, chunk):
        x = X_train[start:start + chunk]
        Z = np.asarray(model.param_jacobian(x), dtype=np.float64)  # (c, m, P)
        r = Y_train[start:start + chunk] - np.asarray(model.value(x), dtype=np.float64)
        residuals[start:start + chunk] = r
        for k in range(m):
            accs[k].add(Z[:, k, masks[k]], r[:, k])
        if kept is not None:
            kept_bytes += Z.nbytes
            kept = kept + [Z] if kept_bytes <= KEEP_Z_BYTES else None
    stats = [acc.finish() for acc in accs]
    lev = np.empty((N, m))
    for i, start in enumerate(range(0, N, chunk)):
        Z = kept[i] if kept is not None else np.asarray(
            model.param_jacobian(X_train[start:start + chunk]), dtype=np.float64)
        for k in range(m):
            lev[start:start + chunk, k] = stats[k].gain(Z[:, k, masks[k]])
    loo = np.column_stack([loo_residuals(residuals[:, k], lev[:, k]) for k in range(m)])
    return ModelFit(stats, residuals, lev, loo, masks)


INTERVAL_FIELDS = ("value", "se", "lower", "upper", "pred_lower", "pred_upper")
#: The CSV column suffix of each field (contract section 5): y, y_se, ...
COLUMN_SUFFIX = {"value": "", "se": "_se", "lower": "_lower", "upper": "_upper",
                 "pred_lower": "_pred_lower", "pred_upper": "_pred_upper"}


def model_intervals(model, fit, X, level=0.95):
    """Intervals of every output at the query points X (one chunk).

    Returns an (N, m, 6) array; the last axis in ``INTERVAL_FIELDS`` order.
    """
    level = check_level(level)
    values = np.asarray(model.value(X), dtype=np.float64)
    Z = np.asarray(model.param_jacobian(X), dtype=np.float64)
    out = np.empty(values.shape + (len(INTERVAL_FIELDS),))
    for k, st in enumerate(fit.stats):
        ci = intervals(values[:, k], Z[:, k, fit.masks[k]], st, level)
        for f, name in enumerate(INTERVAL_FIELDS):
            out[:, k, f] = ci[name]
    return out


# --- the training file ---------------------------------------------------------------


def sniff_header(path):
    """The header cells of a CSV/TSV/TXT file, or None (no header, not text, stdin)."""
    import os

    if path in (None, "-") or not os.path.isfile(path):
        return None
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".csv", ".tsv", ".txt"):
        return None
    try:
        with open(path, "r", encoding="utf-8-sig", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    break
            else:
                return None
    except OSError:
        return None
    delimiter = "," if suffix == ".csv" else ("\t" if "\t" in line else None)
    cells = [c.strip().strip('"').strip("'").strip() for c in
             (line.split(delimiter) if delimiter else line.split())]

    def number(cell):
        try:
            float(cell)
            return True
        except ValueError:
            return False

    return None if all(number(c) for c in cells) else cells


def read_training_set(path, input_names, target_names, stdin=None):
    """(X (N, n), Y (N, m)) from a training file.

    The file holds the inputs and the targets: a header naming them all (other
    columns ignored), or exactly n + m columns, the inputs then the targets.
    """
    from .model import check_finite_points
    from .points import read_points

    input_names, target_names = list(input_names), list(target_names)
    header = sniff_header(path)
    if header is not None and all(name in header for name in input_names):
        missing = [name for name in target_names if name not in header]
        if missing:
            raise JaccliError(
                f"{path}: no target column {', '.join(repr(n) for n in missing)} (the header "
                f"has {', '.join(header)}); name the targets as the spec's outputs or "
                f"choose the columns with --target")
    try:
        table = read_points(path, input_names + target_names, stdin)
    except JaccliError as exc:
        raise JaccliError(
            f"{exc} (a training file holds the inputs and the targets: "
            f"{', '.join(input_names)} then {', '.join(target_names)})") from None
    table = np.asarray(table, dtype=np.float64)
    n = len(input_names)
    source = "<stdin>" if path == "-" else path
    check_finite_points(table, source)
    return table[:, :n], table[:, n:]
