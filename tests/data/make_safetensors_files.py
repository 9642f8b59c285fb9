"""Generate the safetensors files under tests/data/safetensors/ (run once, by hand).

The tests read these files WITHOUT torch or safetensors installed; this script
needs both. Generated with torch 2.13.0 (CPU), safetensors 0.8.0, numpy 2.x,
Python 3.11:
    .venv/bin/pip install torch==2.13.0 safetensors
    .venv/bin/python tests/data/make_safetensors_files.py

Every file is a PyTorch ``state_dict`` written by ``safetensors.torch.save_file``
(the tensor names are the state dict's: ``0.weight``, ``0.bias``, ...):
    mlp.safetensors       float64, spec beside it in mlp.yaml (layout out_in)
    mlp_f32.safetensors   float32, spec embedded: __metadata__ {"jaccli_spec": ...}
    mlp_f16.safetensors   float16, spec embedded
    mlp_bf16.safetensors  bfloat16, spec embedded
    mlp_i32.safetensors   int32 weights (small integers), spec embedded
and for each NAME.safetensors a NAME_ref.npz holding X (points), Y = net(X),
J = dY/dX (N, m, n) and H = d2Y/dX2 (N, m, n, n) by torch.func (jacrev,
hessian), P = dY/dtheta (N, m, P) by torch.func.jacrev over the parameters in
state-dict order, each flattened in C order. All references are computed in
float64 from the weights as stored (a float16 weight upcast exactly), so they
are what jaccli must compute from the file.
"""

import os

import numpy as np
import torch
from safetensors.torch import save_file
from torch.func import functional_call, hessian, jacrev

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "safetensors")

SPEC = """\
inputs: [u, v, w]
outputs: [p, q]
layout: out_in
layers:
  - {units: 6, activation: tanh, weight: 0.weight, bias: 0.bias}
  - {units: 5, activation: sigmoid, weight: 2.weight, bias: 2.bias}
  - {units: 2, activation: linear, weight: 4.weight, bias: 4.bias}
"""


def make_net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 6), torch.nn.Tanh(),
        torch.nn.Linear(6, 5), torch.nn.Sigmoid(),
        torch.nn.Linear(5, 2),
    ).double()


def reference(net, name):
    """X, Y, J, H, P of ``net`` (float64) saved as NAME_ref.npz."""
    x = torch.tensor(np.random.default_rng(7).normal(size=(6, 3)) * 1.5, dtype=torch.float64)
    params = {k: v.detach() for k, v in net.named_parameters()}

    def f(p, xi):
        return functional_call(net, p, (xi,))

    y = net(x).detach().numpy()
    jac = torch.stack([jacrev(lambda xi: f(params, xi))(xi) for xi in x]).numpy()
    hes = torch.stack([hessian(lambda xi: f(params, xi))(xi) for xi in x]).numpy()
    pj = []
    for xi in x:
        grads = jacrev(lambda p: f(p, xi))(params)  # {name: (m, *shape)}
        pj.append(torch.cat([grads[k].reshape(2, -1) for k in params], dim=1))
    pjac = torch.stack(pj).numpy()
    np.savez(os.path.join(OUT, f"{name}_ref.npz"), X=x.numpy(), Y=y, J=jac, H=hes, P=pjac)


def save(net, name, dtype, embed):
    stored = {k: v.detach().to(dtype).contiguous() for k, v in net.state_dict().items()}
    metadata = {"jaccli_spec": SPEC} if embed else None
    save_file(stored, os.path.join(OUT, f"{name}.safetensors"), metadata=metadata)
    # The reference net computes with exactly the stored values, in float64.
    net.load_state_dict({k: v.to(torch.float64) for k, v in stored.items()})
    reference(net, name)


def main():
    os.makedirs(OUT, exist_ok=True)
    save(make_net(0), "mlp", torch.float64, embed=False)
    with open(os.path.join(OUT, "mlp.yaml"), "w") as handle:
        handle.write(SPEC)
    save(make_net(1), "mlp_f32", torch.float32, embed=True)
    save(make_net(2), "mlp_f16", torch.float16, embed=True)
    save(make_net(3), "mlp_bf16", torch.bfloat16, embed=True)
    net = make_net(4)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randint(-3, 4, p.shape))
    save(net, "mlp_i32", torch.int32, embed=True)


if __name__ == "__main__":
    main()
