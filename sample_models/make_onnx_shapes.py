"""Write the two ONNX files docs/models.md shows for issue 21 (inputs of any shape, one output
of several). Run from the repository root: python sample_models/make_onnx_shapes.py

- acas_like.onnx: the shape of the ACAS Xu collision-avoidance networks of the verification
  community: a float32 input (1, 1, 1, 5), Flatten, Gemm/Relu layers (5 -> 8 -> 8 -> 5),
  written with onnx.helper as their converters do (seeded random weights);
- actor_critic.onnx: a Stable-Baselines3-like policy exported by torch.onnx.export
  (dynamo=False): outputs 'actions' (2), 'value' (1) and a constant 'log_std'.
"""

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(21)
sizes = [5, 8, 8, 5]
nodes, inits, current = [helper.make_node("Flatten", ["input"], ["flat"], axis=1)], [], "flat"
for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
    weight = rng.normal(size=(n_out, n_in)).astype(np.float32) / np.sqrt(n_in)
    bias = rng.normal(size=n_out).astype(np.float32) / 10
    inits += [numpy_helper.from_array(weight, f"W{i}"), numpy_helper.from_array(bias, f"B{i}")]
    out = "output" if i == len(sizes) - 2 else f"h{i}"
    nodes.append(helper.make_node("Gemm", [current, f"W{i}", f"B{i}"], [f"z{i}" if out != "output" else out],
                                  transB=1))
    if out != "output":
        nodes.append(helper.make_node("Relu", [f"z{i}"], [out]))
    current = out
graph = helper.make_graph(nodes, "acas_like",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 1, 5])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 5])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="onnx.helper")
onnx.checker.check_model(model)
onnx.save(model, "sample_models/acas_like.onnx")


class ActorCritic(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh())
        self.pi, self.v = torch.nn.Linear(16, 2), torch.nn.Linear(16, 1)
        self.log_std = torch.nn.Parameter(torch.zeros(2))

    def forward(self, obs):
        h = self.body(obs)
        return self.pi(h), self.v(h), self.log_std * 1.0


torch.manual_seed(21)
torch.onnx.export(ActorCritic().eval(), (torch.randn(1, 4),), "sample_models/actor_critic.onnx",
                  dynamo=False, input_names=["obs"], output_names=["actions", "value", "log_std"],
                  dynamic_axes={"obs": {0: "N"}})
