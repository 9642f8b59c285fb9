"""Make the example files of docs/models.md for LayerNorm and LogSoftmax, with torch's exporters.

Run by hand (not in CI) with torch 2.13, onnx and onnxscript:

    .venv/bin/python tests/data/make_vector_files.py

A float64 net Linear(3, 5) -> LayerNorm(5) -> ReLU -> Linear(5, 2) -> LogSoftmax,
gamma and beta moved off their initial 1 and 0, exported by the legacy exporter at
opset 17 (one LayerNormalization node) and at opset 16 (LayerNorm written out as
ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add). tests/test_vector_files.py holds
jaccli's reading of both against torch.func on the same net (rebuilt here from seed 0).
"""

import os
import warnings

import torch
from torch import nn

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vector")


def net():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.LayerNorm(5), nn.ReLU(), nn.Linear(5, 2),
                          nn.LogSoftmax(dim=-1)).double().eval()
    with torch.no_grad():
        model[1].weight.copy_(torch.linspace(-1.5, 1.5, 5, dtype=torch.float64))
        model[1].bias.copy_(torch.linspace(0.5, -0.5, 5, dtype=torch.float64))
    return model


def main():
    os.makedirs(HERE, exist_ok=True)
    x = torch.zeros(1, 3, dtype=torch.float64)
    for opset in (16, 17):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net(), (x,), os.path.join(HERE, f"layernorm_opset{opset}.onnx"),
                              dynamo=False, opset_version=opset, input_names=["x"],
                              output_names=["log_p"], dynamic_axes={"x": {0: "N"}, "log_p": {0: "N"}})


if __name__ == "__main__":
    main()
