"""Tensors traced back to the file's parameters: a value and its derivative.

When a model's layers are assembled, constant scalings and BatchNorm
statistics are folded into the dense kernels and biases the engine runs, and
one file tensor may feed several layers (tied weights). The parameter
Jacobian must still be taken with respect to the tensors the file holds
(``dy/d<tensor>`` columns). So every folded tensor is a ``Tracked``: its value
and the sparse matrix ``d value.ravel() / d theta`` (theta: the file's
parameters, flattened in parameter order). The chain rule through every fold
is then one sparse product: dy/dtheta = dy/dphi @ (d phi / d theta).

The operations are the few the folds need, each with its derivative rule:
structural ones (transpose, broadcast, index) gather rows of the Jacobian;
``mul`` is the product rule; ``sum`` adds rows. Plain NumPy arrays are
constants (no Jacobian).
"""

import numpy as np


def _sparse():
    """scipy.sparse, imported on first use: most models never fold (CLI start-up time)."""
    from scipy import sparse

    return sparse


class Tracked:
    """``value`` (float64) and ``jac``, a CSR matrix (value.size, P), or None for a constant."""

    __slots__ = ("value", "jac")
    __array_ufunc__ = None  # array * tracked: NumPy defers to Tracked.__rmul__

    def __init__(self, value, jac=None):
        self.value = np.asarray(value, dtype=np.float64)
        self.jac = jac

    @staticmethod
    def leaf(value, offset, n_parameters):
        """A file tensor: parameters ``offset .. offset + size`` of theta, in C order."""
        value = np.asarray(value, dtype=np.float64)
        size = value.size
        jac = _sparse().csr_matrix((np.ones(size), np.arange(offset, offset + size),
                                 np.arange(size + 1)), shape=(size, n_parameters))
        return Tracked(value, jac)

    @property
    def shape(self):
        return self.value.shape

    @property
    def T(self):
        return gather(self, np.arange(self.value.size).reshape(self.shape).T)

    def __getitem__(self, key):
        return gather(self, np.arange(self.value.size).reshape(self.shape)[key])

    def __mul__(self, other):
        return mul(self, other)

    __rmul__ = __mul__

    def __add__(self, other):
        return add(self, other)

    __radd__ = __add__

    def __matmul__(self, other):
        return matvec(self, other)

    def __rmatmul__(self, other):
        return matvec(other, self)


def value_of(x):
    return x.value if isinstance(x, Tracked) else np.asarray(x, dtype=np.float64)


def jac_of(x):
    return x.jac if isinstance(x, Tracked) else None


def gather(x, index):
    """result.flat[k] = x.flat[index.flat[k]]: a transpose, a broadcast or an index."""
    index = np.asarray(index)
    value = value_of(x).ravel()[index.ravel()].reshape(index.shape)
    jac = jac_of(x)
    return Tracked(value, None if jac is None else jac[index.ravel()])


def broadcast(x, shape):
    if isinstance(x, Tracked):
        return gather(x, np.broadcast_to(np.arange(x.value.size).reshape(x.shape), shape))
    return np.broadcast_to(np.asarray(x, dtype=np.float64), shape)


def _rows_scaled(jac, factor):
    return None if jac is None else _sparse().diags(np.ravel(factor)) @ jac


def _sum_jacs(first, second):
    if first is None:
        return second
    return first if second is None else (first + second).tocsr()


def mul(a, b):
    """a * b elementwise (broadcasting): d(ab) = b da + a db."""
    shape = np.broadcast_shapes(np.shape(value_of(a)), np.shape(value_of(b)))
    a, b = broadcast(a, shape), broadcast(b, shape)
    va, vb = value_of(a), value_of(b)
    jac = _sum_jacs(_rows_scaled(jac_of(a), vb), _rows_scaled(jac_of(b), va))
    return Tracked(va * vb, jac) if jac is not None else va * vb


def add(a, b):
    shape = np.broadcast_shapes(np.shape(value_of(a)), np.shape(value_of(b)))
    a, b = broadcast(a, shape), broadcast(b, shape)
    jac = _sum_jacs(jac_of(a), jac_of(b))
    total = value_of(a) + value_of(b)
    return Tracked(total, jac) if jac is not None else total


def sum_rows(x):
    """Sum over the first axis of a 2-D tensor: (r, c) -> (c,)."""
    value = value_of(x)
    rows, cols = value.shape
    if not isinstance(x, Tracked):
        return value.sum(axis=0)
    adder = _sparse().csr_matrix((np.ones(rows * cols), np.tile(np.arange(cols), rows),
                               np.arange(rows * cols + 1)), shape=(rows * cols, cols)).T
    return Tracked(value.sum(axis=0), (adder @ x.jac).tocsr())


def matvec(vector, matrix):
    """vector @ matrix, (r,) @ (r, c) -> (c,): the rows scaled, then summed."""
    column = vector if isinstance(vector, Tracked) else np.asarray(vector, dtype=np.float64)
    return sum_rows(mul(column[:, None], matrix))


def jacobian_rows(parts, n_parameters):
    """The Jacobians of ``parts`` stacked in order (a constant part: zero rows), CSR."""
    sparse = _sparse()
    blocks = [jac_of(p) if jac_of(p) is not None
              else sparse.csr_matrix((value_of(p).size, n_parameters)) for p in parts]
    return sparse.vstack(blocks, format="csr")
