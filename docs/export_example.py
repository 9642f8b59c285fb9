"""Makes the two models of docs/export.md ("From PyTorch", "From scikit-learn"): python docs/export_example.py (needs torch and scikit-learn)."""
import warnings; warnings.simplefilter("ignore")
import numpy as np, torch
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from jaccli.export import from_sklearn, from_torch

rng = np.random.default_rng(0)
X = rng.uniform(-2, 2, size=(500, 2))
y = np.sin(X[:, 0]) * X[:, 1]

pipe = make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(16, 16), activation="tanh", solver="lbfgs", max_iter=2000, random_state=0)).fit(X, y)
from_sklearn(pipe, "sk_model.npz", input_names=["u", "v"], output_names=["f"])

torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
opt = torch.optim.LBFGS(net.parameters(), max_iter=500)
Xt, yt = torch.tensor(X), torch.tensor(y).unsqueeze(1)
def closure():
    opt.zero_grad(); loss = ((net(Xt) - yt) ** 2).mean(); loss.backward(); return loss
opt.step(closure)
from_torch(net, "torch_model.npz", input_names=["u", "v"])
