"""What a careful user writes instead of jaccli: JAX, torch.func, NumPy differences.

Each ``*_runners(workload, kernels, biases)`` returns {variant: run(points, out)}
(or None when the framework is missing); ``run`` fills ``out`` (a NumPy
array in jaccli's layout) so every contestant ends with the same result in
host memory. JAX variants: jit(vmap(...)) on all points at once, and on
chunks of 1,000, 2,000 and 5,000 points from a Python loop; compile time is
excluded by the warm-up run.
"""

import numpy as np

CHUNKS = (1000, 2000, 5000)
ALL_POINTS_LIMIT = 200_000  # the all-at-once variant needs O(N) intermediates


def _chunked(fn, chunk, convert=np.asarray):
    def run(points, out):
        for start in range(0, len(points), chunk):
            stop = min(start + chunk, len(points))
            result = fn(points[start:stop])
            if isinstance(result, tuple):
                for target, part in zip(out, result):
                    target[start:stop] = convert(part).reshape(target[start:stop].shape)
            else:
                out[start:stop] = convert(result).reshape(out[start:stop].shape)
    return run


def _variants(fn, n_points, convert=np.asarray):
    variants = {}
    if n_points <= ALL_POINTS_LIMIT:
        variants["all"] = _chunked(fn, n_points, convert)
    for chunk in CHUNKS:
        variants[f"chunks of {chunk}"] = _chunked(fn, chunk, convert)
    return variants


# ---------------------------------------------------------------- JAX


def jax_runners(workload, kernels, biases):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    Ws = [jnp.asarray(k) for k in kernels]
    bs = [jnp.asarray(b) for b in biases]
    acts = {"tanh": jnp.tanh, "gelu": lambda z: jax.nn.gelu(z, approximate=False),
            "linear": lambda z: z}
    layer_acts = [acts[a] for a in workload.activations]

    def net(params, x):
        a = x
        for (W, b), act in zip(params, layer_acts):
            a = act(a @ W + b)
        return a

    params = list(zip(Ws, bs))

    def f(x):
        return net(params, x)

    m, n = workload.n_outputs, workload.n_inputs
    jac = jax.jacrev if m < n else jax.jacfwd
    q = workload.quantity
    if q == "jacobian":
        fn = jax.vmap(jac(f))
    elif q == "hessdiag":
        fn = jax.vmap(lambda x: jnp.diagonal(jax.hessian(f)(x), axis1=-2, axis2=-1))
    elif q == "hessian":
        fn = jax.vmap(jax.hessian(f))
    elif q == "param_jacobian":
        from jax.flatten_util import ravel_pytree

        flat, unravel = ravel_pytree(params)
        per_point = jax.jacrev(lambda theta, x: net(unravel(theta), x))
        fn = jax.vmap(per_point, in_axes=(None, 0))
        fn = (lambda g: (lambda x: g(flat, x)))(jax.jit(fn))
        return _variants(fn, workload.n_points)
    elif q == "value+jacobian":
        fn = jax.vmap(lambda x: (f(x), jac(f)(x)))
    else:
        raise ValueError(q)
    return _variants(jax.jit(fn), workload.n_points)


# ---------------------------------------------------------------- torch.func


def torch_runners(workload, kernels, biases):
    try:
        import torch
        from torch.func import hessian, jacfwd, jacrev, vmap
    except ImportError:
        return None
    torch.set_num_threads(2)
    Ws = [torch.tensor(k) for k in kernels]
    bs = [torch.tensor(b) for b in biases]
    acts = {"tanh": torch.tanh, "gelu": torch.nn.functional.gelu, "linear": lambda z: z}
    layer_acts = [acts[a] for a in workload.activations]

    def net(params, x):
        a = x
        for (W, b), act in zip(params, layer_acts):
            a = act(a @ W + b)
        return a

    params = list(zip(Ws, bs))

    def f(x):
        return net(params, x)

    m, n = workload.n_outputs, workload.n_inputs
    jac = jacrev if m < n else jacfwd
    q = workload.quantity
    if q == "jacobian":
        vfn = vmap(jac(f))
    elif q == "hessdiag":
        vfn = vmap(lambda x: torch.diagonal(hessian(f)(x), dim1=-2, dim2=-1))
    elif q == "hessian":
        vfn = vmap(hessian(f))
    elif q == "param_jacobian":
        flat = torch.cat([t.reshape(-1) for pair in params for t in pair])
        shapes = [t.shape for pair in params for t in pair]

        def unflatten(theta):
            tensors, offset = [], 0
            for shape in shapes:
                size = int(np.prod(shape))
                tensors.append(theta[offset:offset + size].reshape(shape))
                offset += size
            return list(zip(tensors[0::2], tensors[1::2]))

        per_point = jacrev(lambda theta, x: net(unflatten(theta), x))
        g = vmap(per_point, in_dims=(None, 0))
        vfn = lambda x: g(flat, x)  # noqa: E731
    elif q == "value+jacobian":
        vfn = vmap(lambda x: (f(x), jac(f)(x)))
    else:
        raise ValueError(q)

    def fn(x):
        with torch.no_grad():
            return vfn(torch.from_numpy(np.ascontiguousarray(x)))

    def convert(t):
        return t.numpy()

    # one variant: torch.func is 3-15x slower than JAX, and the bench has ten minutes
    return {"chunks of 2000": _chunked(fn, 2000, convert)}


# ---------------------------------------------------------------- NumPy central differences


def numpy_fd_runner(workload, kernels, biases):
    """Central differences of a batched NumPy forward pass, as written by hand."""
    from scipy.special import erf

    acts = {"tanh": np.tanh, "linear": lambda z: z,
            "gelu": lambda z: 0.5 * z * (1.0 + erf(z / np.sqrt(2.0)))}
    layer_acts = [acts[a] for a in workload.activations]

    def forward(x, Ws=kernels, bs=biases):
        a = x
        for W, b, act in zip(Ws, bs, layer_acts):
            a = act(a @ W + b)
        return a

    n = workload.n_inputs
    q = workload.quantity
    h1, h2 = 1e-6, 1e-4  # step sizes: about eps^(1/3) and eps^(1/4)

    def chunked(compute, chunk=5000):
        def run(points, out):
            for start in range(0, len(points), chunk):
                compute(points[start:start + chunk], out, start)
        return run

    def jacobian(x, out, start):
        for j in range(n):
            xp, xm = x.copy(), x.copy()
            xp[:, j] += h1
            xm[:, j] -= h1
            out[start:start + len(x), :, j] = (forward(xp) - forward(xm)) / (2 * h1)

    def hessdiag(x, out, start):
        f0 = forward(x)
        for j in range(n):
            xp, xm = x.copy(), x.copy()
            xp[:, j] += h2
            xm[:, j] -= h2
            out[start:start + len(x), :, j] = (forward(xp) - 2 * f0 + forward(xm)) / h2 ** 2

    def hessian(x, out, start):
        f0 = forward(x)
        for i in range(n):
            for j in range(i, n):
                if i == j:
                    xp, xm = x.copy(), x.copy()
                    xp[:, j] += h2
                    xm[:, j] -= h2
                    value = (forward(xp) - 2 * f0 + forward(xm)) / h2 ** 2
                else:
                    parts = []
                    for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                        xs = x.copy()
                        xs[:, i] += si * h2
                        xs[:, j] += sj * h2
                        parts.append(si * sj * forward(xs))
                    value = sum(parts) / (4 * h2 ** 2)
                out[start:start + len(x), :, i, j] = value
                out[start:start + len(x), :, j, i] = value

    def param_jacobian(x, out, start):
        index = 0
        for layer in range(len(kernels)):
            for tensor in (kernels, biases):
                flat = tensor[layer].reshape(-1)
                for p in range(flat.size):
                    saved = flat[p]
                    flat[p] = saved + h1
                    fp = forward(x)
                    flat[p] = saved - h1
                    fm = forward(x)
                    flat[p] = saved
                    out[start:start + len(x), :, index] = (fp - fm) / (2 * h1)
                    index += 1

    if q == "value+jacobian":
        def both(x, out, start):
            out[0][start:start + len(x)] = forward(x)
            jacobian(x, out[1], start)
        return {"central": chunked(both, 100_000)}
    chunk = 10_000 if q == "param_jacobian" else 5000
    return {"central": chunked({"jacobian": jacobian, "hessdiag": hessdiag, "hessian": hessian,
                                "param_jacobian": param_jacobian}[q], chunk)}
