"""Batched derivatives of an MLP: every function takes a chunk of points.

The network is  u = (x - offset) / scale,  a_l = s_l(a_{l-1} W_l + b_l),
y = a_L * out_scale + out_offset.  All work is matrix products over the
whole chunk; the only Python loops run over layers, outputs or inputs.

Shapes: x (N, n); tangents T (N, n, d) hold d(activation)/dx_j in row j;
adjoints A (N, m, d) hold dy_k/d(activation) in row k.

These are the fast sweeps (buffers reused across chunks, activations in
place). A vector activation (softmax, on any layer) has no elementwise s'
and s'': its record holds the rule's state in their place and its layer
goes through the rule's maps (``activations.VectorRule``: jvp for the
tangents, vjp for the adjoints, the curvature and the second-order tangent
term for the Hessian and its diagonal); an elementwise layer keeps its
broadcast products. ``jaccli.engine.taylor`` has the Taylor-mode Hessian
diagonal and Laplacian, used when outputs outnumber inputs.
``SWEEPS`` names the sweep of each quantity (``jaccli.quantities`` runs them).

Over 600 lines on purpose: every sweep shares the private forward, adjoint and
tangent machinery and the workspace conventions above; a split would turn that
machinery into a public interface between modules for no reader's gain.
"""

from dataclasses import dataclass

import numpy as np

from jaccli.engine import kernels
from jaccli.engine.network import first_tangents, per_point
from jaccli.engine.taylor import taylor_hessdiag, taylor_laplacian


#: Floats of a matrix folded into a product (``_fused_tangents``), kept per
#: network: 8 MB in float64 at most.
FUSED_LIMIT = 1 << 20

# ---------------------------------------------------------------- workspaces


class Workspace:
    """Scratch buffers reused from one chunk to the next (one per worker thread).

    Fresh large temporaries cost page faults and cache misses; a chunk's
    buffers are allocated once, at the largest chunk seen, and sliced.
    """

    def __init__(self):
        self._buffers = {}

    def get(self, key, shape, dtype):
        size = 1
        for extent in shape:
            size *= extent
        buffer = self._buffers.get(key)
        if buffer is None or buffer.size < size or buffer.dtype != dtype:
            buffer = np.empty(max(size, 1), dtype=dtype)
            self._buffers[key] = buffer
        return buffer[:size].reshape(shape)


def _dtype(net, x):
    return np.result_type(x.dtype, net.layers[0].kernel.dtype)


def _output(out, shape, dtype):
    """Where a result goes: ``out`` when given (any strides), else a new array."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != shape:
        out = out.reshape(shape)
    return out


def _scaled(net, x, ws, dtype):
    if not (net.in_offset.any() or (net.in_inv_scale != 1).any()):
        return x if x.dtype == dtype else x.astype(dtype)
    u = ws.get("u", x.shape, dtype)
    np.subtract(x, net.in_offset, out=u)
    u *= net.in_inv_scale
    return u


# ---------------------------------------------------------------- activations


def _activate(layer, z, order, ws, tag):
    """(s(z + b), s'(z + b), s''(z + b)) for ``order`` 0, 1, 2, with b the layer's
    bias; None stands for 1 (s') or 0 (s'').

    z may be overwritten. An activation with a compiled one-pass step
    (``kernels.fused_step``, chosen per machine) adds the bias in the same
    pass; one with an in-place rule in the table works in this thread's
    workspace; the others use their plain rule. A vector activation gives
    (s, state, state) (None for an order not asked): callers check ``layer.couples_units``
    (the record then holds the rule's state where an elementwise layer has s' and s'').
    """
    act = layer.activation
    if act.vector is not None:
        if layer.bias is not None:
            z += layer.bias
        s, state, _ = act.rule(z, **layer.params)
        return s, (state if order >= 1 else None), (state if order >= 2 else None)

    def scratch(key):
        return ws.get((key, tag), z.shape, z.dtype)

    step = kernels.fused_step(act, z.shape) if z.dtype == np.float64 and z.ndim == 2 else None
    if step is not None:
        s1 = scratch("s1") if order >= 1 else None
        s2 = scratch("s2") if order >= 2 else None
        step(z, layer.bias, order, s1, s2)
        return z, s1, s2
    if layer.bias is not None:
        z += layer.bias
    if act.in_place is not None:
        result = act.in_place(z, order, scratch, **layer.params)
        if result is not None:
            return result
    s, s1, s2 = act.rule(z, **layer.params)
    return s, (s1 if order >= 1 else None), (s2 if order >= 2 else None)


# ---------------------------------------------------------------- the sweeps


def _is_linear(layer):
    return layer.activation.name == "linear"


def _forward(net, x, order, ws, dtype, value=True):
    """Per layer (input a_{l-1}, output a_l, s', s'') for one chunk, in workspace buffers.

    Without ``value`` a linear last layer is not computed (its record is
    (a_{L-1}, None, None, None)): a derivative needs only its s' = 1, s'' = 0.
    """
    a = _scaled(net, x, ws, dtype)
    records = []
    for index, layer in enumerate(net.layers):
        if not value and index == len(net.layers) - 1 and _is_linear(layer):
            records.append((a, None, None, None))
            break
        z = ws.get(("z", index), (len(x), layer.kernel.shape[1]), dtype)
        np.matmul(a, layer.kernel, out=z)
        out, s1, s2 = _activate(layer, z, order, ws, index)
        records.append((a, out, s1, s2))
        a = out
    return records


def _adjoints(net, records, ws, dtype, stop=0, delta_at_stop=True):
    """Reverse sweep: per layer l >= stop (0-based), (A_l, delta_l, diag_l).

    A_l = dy/da_l and delta_l = dy/dz_l, both (N, m, d_l). The output scaling
    enters as A_L = diag(out_scale); an elementwise last layer then has a
    diagonal delta_L, given as diag_L (N, m) with delta_L = None, and the
    product delta_L W_L^T is a broadcast, not a matrix product. A vector last
    layer gives a dense delta_L from its vector-Jacobian product. Without
    ``delta_at_stop``, delta_stop is not formed (None): the curvature weights
    need A only.
    """
    n_points, m = len(records[0][0]), net.n_outputs
    last = len(net.layers) - 1
    result = [None] * (last + 1)
    a_last, s1_last = records[last][1], records[last][2]
    diag = delta = None
    if net.layers[last].couples_units:
        output_adjoint = np.broadcast_to(np.diag(net.out_scale), (n_points, m, m))
        delta = net.layers[last].activation.vjp(a_last, s1_last, output_adjoint)
    elif s1_last is None:
        diag = np.broadcast_to(net.out_scale, (n_points, m))
    else:
        diag = ws.get("diag", (n_points, m), dtype)
        np.multiply(s1_last, net.out_scale, out=diag)
    result[last] = (None, delta, diag)
    for index in range(last - 1, stop - 1, -1):
        kernel_t = net.layers[index + 1].kernel_t
        shape = (n_points, m, kernel_t.shape[1])
        if delta is not None:
            adjoint = ws.get(("A", index), shape, dtype)
            np.matmul(delta.reshape(n_points * m, -1), kernel_t,
                      out=adjoint.reshape(n_points * m, -1))
        elif s1_last is None:
            # a linear last layer: A_{L-1} = diag(out_scale) W_L^T, the same at every point
            adjoint = np.broadcast_to(net.out_scale[:, None] * kernel_t, shape)
        else:
            adjoint = ws.get(("A", index), shape, dtype)
            np.multiply(diag[:, :, None], kernel_t[None, :, :], out=adjoint)
        s1 = records[index][2]
        if index == stop and not delta_at_stop:
            delta = None
        elif net.layers[index].couples_units:
            delta = net.layers[index].activation.vjp(records[index][1], s1, adjoint)
        elif s1 is None:
            delta = adjoint
        else:
            delta = ws.get(("delta", index), shape, dtype)
            np.multiply(adjoint, s1[:, None, :], out=delta)
        result[index] = (adjoint, delta, None)
    return result


def _cached(net, name, dtype, build):
    """``build()``'s C-contiguous result, kept on the network per (name, dtype)."""
    key = (name, np.dtype(dtype).str)
    matrix = net.fused_cache.get(key)
    if matrix is None:
        matrix = net.fused_cache[key] = np.ascontiguousarray(build())
    return matrix


def _dense_delta(result, index, ws, dtype):
    """delta_l as an (N, m, d_l) array, also for a diagonal last layer."""
    adjoint, delta, diag = result[index]
    if delta is not None:
        return delta
    n_points, m = diag.shape
    dense = ws.get("dense_delta", (n_points, m, m), dtype)
    dense[...] = 0
    dense.reshape(n_points, m * m)[:, ::m + 1] = diag
    return dense


def _finish(out, result):
    if out is not None and result is not out:
        out[...] = result.reshape(out.shape)
        return out
    return result


def value(net, x, out=None, work=None):
    """y = f(x), (N, m)."""
    ws, dtype = work or Workspace(), _dtype(net, x)
    return _value_of(net, _forward(net, x, 0, ws, dtype), out, dtype)


def _value_of(net, records, out, dtype):
    """y from a forward pass's last activation, through the output scaling."""
    a = records[-1][1]
    y = _output(out, (len(a), net.n_outputs), dtype)
    np.multiply(a, net.out_scale, out=y)
    y += net.out_offset
    return y


def jacobian_reverse(net, x, out=None, work=None):
    """dy/dx (N, m, n) by m adjoint sweeps."""
    ws, dtype = work or Workspace(), _dtype(net, x)
    return _reverse_jacobian_of(net, _forward(net, x, 1, ws, dtype, value=False), out, ws, dtype)


def _reverse_jacobian_of(net, records, out, ws, dtype):
    """dy/dx from a forward pass (with s') by the adjoint sweep."""
    n_points, m, n = len(records[0][0]), net.n_outputs, net.n_inputs
    _, delta, diag = _adjoints(net, records, ws, dtype, stop=0)[0]
    jac = _output(out, (n_points, m, n), dtype)
    first = net.layers[0].kernel
    target = jac if jac.flags.c_contiguous else ws.get("jac", jac.shape, dtype)
    if delta is None:
        np.multiply(diag[:, :, None], first.T[None, :, :], out=target)
    else:
        np.matmul(delta.reshape(n_points * m, -1), net.layers[0].kernel_t,
                  out=target.reshape(n_points * m, n))
    if (net.in_inv_scale != 1).any():
        target *= net.in_inv_scale
    return _finish(jac if target is not jac else None, target)


def _tangents(net, records, ws, dtype, upto, visit=None, carry=True):
    """Forward sweep of the tangents T_l = dz_l/dx, layers 0..upto.

    ``visit(l, T_l)`` sees each layer's pre-activation tangents: (n, d_0) for
    layer 0 (the same at every point), (N, n, d_l) after. Returns the last
    post-activation tangents da_upto/dx (N, n, d_upto), or, without
    ``carry``, None once layer ``upto`` is visited (its s' pass skipped).
    """
    n_points, n = len(records[0][0]), net.n_inputs
    tz = first_tangents(net).astype(dtype, copy=False)
    fused = (upto >= 1 and records[0][2] is not None and not net.layers[0].couples_units
             and _fused_tangents(net, dtype) is not None)
    ta = None
    for index in range(upto + 1):
        layer = net.layers[index]
        if index == 1 and fused:
            # T_1[b, j] = s'_0[b] (T_0[j] * W_1): one (N, d_0) @ (d_0, n d_1) product
            nxt = ws.get(("T", index), (n_points, n, layer.kernel.shape[1]), dtype)
            np.matmul(records[0][2], _fused_tangents(net, dtype), out=nxt.reshape(n_points, -1))
            tz = nxt
        elif index > 0:
            nxt = ws.get(("T", index), (n_points, n, layer.kernel.shape[1]), dtype)
            np.matmul(ta.reshape(n_points * n, -1), layer.kernel,
                      out=nxt.reshape(n_points * n, -1))
            tz = nxt
        if visit is not None:
            visit(index, tz)
        if index == upto and not carry:
            return None
        s1 = records[index][2]
        if layer.couples_units:
            ta = layer.activation.jvp(records[index][1], s1, per_point(tz, n_points))
        elif index == 0:
            if fused:
                continue  # layer 1's tangents come straight from s'_0
            ta = ws.get(("T", 0), (n_points, n, tz.shape[1]), dtype)
            if s1 is None:
                ta[...] = tz
            else:
                np.multiply(s1[:, None, :], tz[None, :, :], out=ta)
        else:
            ta = tz
            if s1 is not None:
                ta *= s1[:, None, :]
    return ta


def _fused_tangents(net, dtype):
    """(d_0, n * d_1): row u, block j holds T_0[j, u] * W_1[u, :], or None if too big.

    The first layer's tangents T_0 = diag(1/scale) W_0 are the same at every
    point, so layer 1's tangents are s'_0 @ this matrix: one wide product
    instead of a broadcast (N, n, d_0) product and n narrow ones.
    """
    if len(net.layers) < 2:
        return None
    k0, k1 = net.layers[0].kernel, net.layers[1].kernel
    if net.n_inputs * k1.size > FUSED_LIMIT:
        return None

    def build():
        t0 = first_tangents(net).astype(dtype)  # (n, d_0)
        return (t0.T[:, :, None] * k1[:, None, :]).reshape(k0.shape[1], -1)

    return _cached(net, "tangents", dtype, build)


def jacobian_forward(net, x, out=None, work=None):
    """dy/dx (N, m, n) by n tangent sweeps."""
    ws, dtype = work or Workspace(), _dtype(net, x)
    records = _forward(net, x, 1, ws, dtype, value=False)
    return _tangent_jacobian_of(net, _tangents(net, records, ws, dtype, len(net.layers) - 1),
                                out, dtype)


def _tangent_jacobian_of(net, ta, out, dtype):
    """dy/dx from the last layer's tangents da_L/dx (N, n, m), through the output scaling."""
    jac = _output(out, (len(ta), net.n_outputs, net.n_inputs), dtype)
    np.multiply(ta.transpose(0, 2, 1), net.out_scale[:, None], out=jac)
    return jac


def jacobian(net, x, out=None, work=None):
    """dy/dx (N, m, n): forward sweeps cost n, reverse sweeps m; take the fewer."""
    if net.n_outputs < net.n_inputs:
        return jacobian_reverse(net, x, out, work)
    return jacobian_forward(net, x, out, work)


def activation_parameter_blocks(layer, a_in, adjoint):
    """dy/dp (N, m, d) for each tensor p of the layer's activation (prelu's slope):
    A_{l,k,j} * ds_j/dp_j, each unit's s depending on its own p_j, at z recomputed from
    the layer's input a_in. ``adjoint``: A_l = dy/da_l (N, m, d)."""
    if not layer.activation.tensors:
        return []
    z = layer.pre_activation(a_in)
    return [adjoint * derivative(z, **layer.params)[:, None, :]
            for derivative in layer.activation.tensors.values()]


def write_parameter_blocks(out, layers, inputs, deltas, layout, extras=None):
    """Fill dy/dtheta (N, m, P) layer by layer, each entry written once.

    dy_k/dW_l[i, j] = a_{l-1, i} * delta_{l, k, j}, an outer product per point;
    the block's flattening follows the kernels' shape in the file (``layout``).
    ``extras``: per layer, the blocks of its activation's tensors, after its bias
    (``activation_parameter_blocks``; None: no layer has any).
    """
    n_points, m = out.shape[:2]
    offset = 0
    for index, (layer, a_in, delta) in enumerate(zip(layers, inputs, deltas)):
        d_in, d_out = layer.kernel.shape
        block = out[:, :, offset:offset + d_in * d_out]
        if layout == "out_in":
            block = block.reshape(n_points, m, d_out, d_in)
            np.multiply(delta[:, :, :, None], a_in[:, None, None, :], out=block)
        else:
            block = block.reshape(n_points, m, d_in, d_out)
            np.multiply(a_in[:, None, :, None], delta[:, :, None, :], out=block)
        offset += d_in * d_out
        if layer.bias is not None:
            out[:, :, offset:offset + d_out] = delta
            offset += d_out
        for block in (extras[index] if extras else []):
            out[:, :, offset:offset + d_out] = block
            offset += d_out
    return out


def param_jacobian(net, x, layout, out=None, work=None):
    """dy/dtheta (N, m, P), each byte of ``out`` written once.

    ``layout`` says whether the kernels are stored transposed ("out_in") in
    the file, which fixes the flattening order of each kernel's block.
    dy_k/dW_l[i, j] = a_{l-1, i} * delta_{l, k, j}: an outer product per point.
    """
    ws, dtype = work or Workspace(), _dtype(net, x)
    records = _forward(net, x, 1, ws, dtype, value=False)
    adjoints = _adjoints(net, records, ws, dtype, stop=0)
    n_points, m = len(x), net.n_outputs
    total = sum(layer.n_parameters for layer in net.layers)
    out = _output(out, (n_points, m, total), dtype)
    deltas = [_dense_delta(adjoints, index, ws, dtype) for index in range(len(net.layers))]
    return write_parameter_blocks(out, net.layers, [r[0] for r in records], deltas, layout,
                                  _activation_blocks(net, records, adjoints))


def _activation_blocks(net, records, adjoints):
    """Per layer, dy/d(its activation's tensors) (``activation_parameter_blocks``); None
    when no layer's activation has a tensor (the usual case)."""
    if not any(layer.activation.tensors for layer in net.layers):
        return None
    last = len(net.layers) - 1
    output = np.broadcast_to(np.diag(net.out_scale), (len(records[0][0]),) + (net.n_outputs,) * 2)
    return [activation_parameter_blocks(layer, records[index][0],
                                        output if index == last else adjoints[index][0])
            for index, layer in enumerate(net.layers)]


# ---------------------------------------------------------------- second order


def _curvature_terms(net, x, ws, dtype, records=None):
    """Forward (with s''; ``records`` if done already), one adjoint sweep, and the curvature weights.

    Returns (records, weights, last) where weights[l] = A_l * s''(z_l), (N, m, d_l),
    for the layers with curvature, and ``last`` the highest such layer (-1 if none).
    For the last layer A_L = diag(out_scale), so its weight is (N, m) and diagonal.
    A vector layer's weight is a ``VectorWeight``: its rule needs A_l whole.
    """
    records = records or _forward(net, x, 2, ws, dtype, value=False)
    curved = [i for i, r in enumerate(records) if r[3] is not None]
    weights = {}
    if not curved:
        return records, weights, -1
    adjoints = _adjoints(net, records, ws, dtype, stop=curved[0], delta_at_stop=False)
    final = len(net.layers) - 1
    for index in curved:
        s2 = records[index][3]
        if net.layers[index].couples_units:
            adjoint = adjoints[index][0] if index < final else np.broadcast_to(
                np.diag(net.out_scale), (len(x), net.n_outputs, net.n_outputs))
            weights[index] = VectorWeight(net.layers[index].activation, records[index][1], s2, adjoint)
        elif index == final:
            weights[index] = s2 * net.out_scale
        else:
            weight = ws.get(("g", index), adjoints[index][0].shape, dtype)
            np.multiply(adjoints[index][0], s2[:, None, :], out=weight)
            weights[index] = weight
    return records, weights, curved[-1]


@dataclass(frozen=True)
class VectorWeight:
    """A vector layer's part of the curvature: its activation, output s, state, adjoint A_l."""

    activation: object
    s: np.ndarray
    state: object
    adjoint: np.ndarray  # (N, m, d_l)

    def hessdiag(self, tz):
        """sum_u A_l,ku d2s_u[T_j, T_j] (N, m, n) for tangents T = dz_l/dx."""
        t = per_point(tz, len(self.s))
        second = self.activation.second(self.s, self.state, self.state, t, self.activation.jvp(
            self.s, self.state, t))
        return self.adjoint @ second.transpose(0, 2, 1)

    def hessian(self, tz, k):
        """T (sum_u A_l,ku d2s_u/dz2) T^T (N, n, n) for output k."""
        return self.activation.curvature(self.s, self.state, self.state, per_point(tz, len(self.s)),
                                         self.adjoint[:, k])


def hessdiag_tangent_adjoint(net, x, out=None, work=None):
    """d2y_k/dx_j2 (N, m, n) by forward tangents plus one adjoint sweep.

    With T_l = dz_l/dx and g_l = dy/da_l * s''(z_l):
        H_k,jj = sum_l sum_units g_l,k * T_l,j^2
    (exact for elementwise activations: the linear maps add no curvature).
    Costs n tangent sweeps and m adjoint sweeps; Taylor mode costs 2 n.
    A vector layer adds A_l,k . d2s[T_j, T_j] (its rule's second-order term).
    """
    ws, dtype = work or Workspace(), _dtype(net, x)
    n_points, m, n = len(x), net.n_outputs, net.n_inputs
    records, weights, upto = _curvature_terms(net, x, ws, dtype)
    hd = _output(out, (n_points, m, n), dtype)
    acc = hd if hd.flags.c_contiguous else ws.get("hd", hd.shape, dtype)
    if 0 not in weights:
        acc[...] = 0  # else layer 0's term is written, not added
    if upto >= 0:
        _tangents(net, records, ws, dtype, upto, _hessdiag_visitor(net, weights, acc, ws, dtype),
                  carry=False)
    return _finish(hd if acc is not hd else None, acc)


def _hessdiag_visitor(net, weights, acc, ws, dtype):
    """``visit(l, T_l)`` for ``_tangents``: layer l's curvature term into ``acc`` (N, m, n),
    written for layer 0, added for the others."""
    n_points, m, n = acc.shape
    final = len(net.layers) - 1

    def visit(index, tz):
        weight = weights.get(index)
        if weight is None:
            return
        if isinstance(weight, VectorWeight):
            term = weight.hessdiag(tz)
            if index == 0:
                acc[...] = term
            else:
                np.add(acc, term, out=acc)
            return
        if index == 0:
            sq = tz * tz  # (n, d_0): one matrix product for every point
            if index == final:
                np.multiply(weight[:, :, None], sq.T[None], out=acc)
            else:
                np.matmul(weight.reshape(n_points * m, -1), sq.T, out=acc.reshape(n_points * m, n))
            return
        sq = ws.get("sq", tz.shape, dtype)
        np.multiply(tz, tz, out=sq)
        if index == final:
            np.add(acc, (sq * weight[:, None, :]).transpose(0, 2, 1), out=acc)
        else:
            part = ws.get("part", (n_points, n, m), dtype)
            np.matmul(sq, weight.transpose(0, 2, 1), out=part)
            np.add(acc, part.transpose(0, 2, 1), out=acc)

    return visit


def hessdiag(net, x, out=None, work=None):
    """d2y_k/dx_j2 (N, m, n): tangents + one adjoint sweep when m <= n, else Taylor
    mode (``taylor.taylor_hessdiag``, about 2 n forward sweeps)."""
    if net.n_outputs <= net.n_inputs:
        return hessdiag_tangent_adjoint(net, x, out, work)
    return _finish(out, taylor_hessdiag(net, x))


def laplacian(net, x, out=None, work=None):
    """sum_j d2y_k/dx_j2 (N, m): the Hessian diagonal's sum, or the forward Laplacian."""
    if net.n_outputs <= net.n_inputs:
        ws = work or Workspace()
        dtype = _dtype(net, x)
        hd = hessdiag_tangent_adjoint(net, x, ws.get("lap_hd", (len(x), net.n_outputs, net.n_inputs), dtype), ws)
        result = _output(out, (len(x), net.n_outputs), dtype)
        np.sum(hd, axis=-1, out=result)
        return result
    return _finish(out, taylor_laplacian(net, x))


def hessian(net, x, out=None, work=None):
    """d2y_k/dx_i dx_j (N, m, n, n): forward tangents plus one adjoint sweep.

    H_k = sum_l T_l^T diag(A_l,k * s''(z_l)) T_l; the first layer's T is the
    same at every point, so its term is one matrix product for the chunk.
    A vector layer's term is T_l^T C_l,k T_l with C_l,k = sum_u A_l,ku d2s_u/dz2
    (its rule's curvature). Each chunk's result is exactly symmetric.
    """
    ws, dtype = work or Workspace(), _dtype(net, x)
    n_points, m, n = len(x), net.n_outputs, net.n_inputs
    records, weights, upto = _curvature_terms(net, x, ws, dtype)
    hess = _output(out, (n_points, m, n, n), dtype)
    acc = hess if hess.flags.c_contiguous else ws.get("hess", hess.shape, dtype)
    if 0 not in weights:
        acc[...] = 0  # else layer 0's term is written, not added
    if upto >= 0:
        _tangents(net, records, ws, dtype, upto, _hessian_visitor(net, weights, acc, ws, dtype),
                  carry=False)
    _mirror_upper_triangle(acc)
    return _finish(hess if acc is not hess else None, acc)


def _hessian_visitor(net, weights, acc, ws, dtype):
    """``visit(l, T_l)`` for ``_tangents``: layer l's curvature term into ``acc`` (N, m, n, n),
    written for layer 0, added for the others."""
    n_points, m, n, _ = acc.shape
    final = len(net.layers) - 1

    def visit(index, tz):
        weight = weights.get(index)
        if weight is None:
            return
        if isinstance(weight, VectorWeight):
            for k in range(m):
                term = weight.hessian(tz, k)
                if index == 0:
                    acc[:, k] = term
                else:
                    acc[:, k] += term
            return
        if index == 0:
            outer = (tz[:, None, :] * tz[None, :, :]).reshape(n * n, -1)  # (n*n, d_0)
            if index == final:
                np.multiply(weight[:, :, None], outer.T.reshape(m, n * n)[None], out=acc.reshape(n_points, m, n * n))
            else:
                np.matmul(weight.reshape(n_points * m, -1), outer.T, out=acc.reshape(n_points * m, n * n))
            return
        if index == final:
            for k in range(m):
                v = tz[:, :, k]
                acc[:, k] += weight[:, k, None, None] * v[:, :, None] * v[:, None, :]
            return
        scaled = ws.get("scaled", tz.shape, dtype)
        part = ws.get("part", (n_points, n, n), dtype)
        tz_t = tz.transpose(0, 2, 1)
        for k in range(m):
            np.multiply(tz, weight[:, k, None, :], out=scaled)
            np.matmul(scaled, tz_t, out=part)
            acc[:, k] += part

    return visit


def _mirror_upper_triangle(hess):
    """Copy H's upper triangle onto the lower, in place, so H == H^T exactly.

    The two triangles come from sums taken in different orders and would
    differ in the last bits; a copy costs less than averaging them.
    """
    n = hess.shape[-1]
    rows, columns = np.triu_indices(n, 1)
    hess[..., columns, rows] = hess[..., rows, columns]


# ---------------------------------------------------------------- several in one sweep

SECOND_ORDER = ("hessdiag", "laplacian", "hessian")


def together(net, x, names, work=None):
    """{name: result} for ``names`` (value, jacobian, hessdiag, laplacian, hessian)
    from one sweep over the chunk.

    One forward pass gives the value; with first order only, the Jacobian
    comes from the same pass's adjoints (m < n) or tangents. With second
    order, one adjoint sweep gives the curvature weights and one tangent
    sweep gives both the curvature terms and, carried to the last layer, the
    Jacobian; the Hessian diagonal and the Laplacian are the Hessian's
    diagonal and trace, or the diagonal's sum. Where one sweep does not serve
    (second order with more outputs than inputs), each quantity is computed
    on its own.
    """
    ws, dtype = work or Workspace(), _dtype(net, x)
    second = [name for name in names if name in SECOND_ORDER]
    if second and net.n_outputs > net.n_inputs:
        return {name: SWEEPS[name](net, x, work=ws) for name in names}
    order = 2 if second else 1 if "jacobian" in names else 0
    records = _forward(net, x, order, ws, dtype, value="value" in names)
    results = {}
    if "value" in names:
        results["value"] = _value_of(net, records, None, dtype)
    if "jacobian" in names and not second:
        if net.n_outputs < net.n_inputs:
            results["jacobian"] = _reverse_jacobian_of(net, records, None, ws, dtype)
        else:
            ta = _tangents(net, records, ws, dtype, len(net.layers) - 1)
            results["jacobian"] = _tangent_jacobian_of(net, ta, None, dtype)
    if second:
        results.update(_second_order_together(net, x, names, records, ws, dtype))
    return {name: results[name] for name in names}


def _second_order_together(net, x, names, records, ws, dtype):
    """The second-order quantities of ``names`` (and the Jacobian, if named) from one
    adjoint and one tangent sweep (m <= n)."""
    n_points, m, n = len(x), net.n_outputs, net.n_inputs
    records, weights, upto = _curvature_terms(net, x, ws, dtype, records)
    if "hessian" in names:
        acc = np.empty((n_points, m, n, n), dtype=dtype)
        if 0 not in weights:
            acc[...] = 0
        visit = _hessian_visitor(net, weights, acc, ws, dtype)
    else:
        acc = np.empty((n_points, m, n), dtype=dtype)
        if 0 not in weights:
            acc[...] = 0
        visit = _hessdiag_visitor(net, weights, acc, ws, dtype)
    last = len(net.layers) - 1 if "jacobian" in names else upto
    results = {}
    if last >= 0:
        ta = _tangents(net, records, ws, dtype, last, visit, carry="jacobian" in names)
        if "jacobian" in names:
            results["jacobian"] = _tangent_jacobian_of(net, ta, None, dtype)
    if "hessian" in names:
        _mirror_upper_triangle(acc)
        results["hessian"] = acc
        diagonal = np.diagonal(acc, axis1=-2, axis2=-1)
    else:
        diagonal = acc
    if "hessdiag" in names:
        results["hessdiag"] = np.ascontiguousarray(diagonal)
    if "laplacian" in names:
        results["laplacian"] = diagonal.sum(axis=-1)
    return results


SWEEPS = {"value": value, "jacobian": jacobian, "hessdiag": hessdiag, "laplacian": laplacian,
          "hessian": hessian}
