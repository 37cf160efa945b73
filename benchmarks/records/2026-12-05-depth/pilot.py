"""Depth pilot (before any depth config was declared): the cost of a 784-256-256-10 run with the engine, and how
many free steps its free phase needs on validation images after a short training.

Trains uniform 0.3 (and dt = 1) for two epochs on MNIST's fit split (T1 = 60, T2 = 12, beta 0.5, momentum 0, lr
0.2/0.1/0.05), then relaxes the first 1,000 validation images for 400 steps and prints, every few steps, the share of
samples still moving by residual_tol (1e-4) per hidden layer and overall. Usage (from the repository root, MNIST
prepared): python benchmarks/records/2026-12-05-depth/pilot.py
"""

import time

import torch

from htsep.data.splits import as_tensors, load_split
from htsep.ep.model import EPNetwork, per_neuron, relaxation_step
from htsep.training.runs import train_run

STEPS = (5, 10, 15, 20, 30, 40, 60, 80, 100, 150, 200, 300, 400)
TOL = 1e-4


@torch.no_grad()
def moving_share(net: EPNetwork, x: torch.Tensor, horizon: int) -> dict[int, list[float]]:
    drives, dt_rows = net.drives(x), [per_neuron(d) for d in net.dt]
    states = net.zero_states(x)
    out = {}
    for t in range(1, horizon + 1):
        new = relaxation_step(states, net.weights, drives, dt_rows, net.sigma)
        moving = [(n - s).abs().amax(-1) >= TOL for n, s in zip(new, states, strict=True)]
        states = new
        if t in STEPS:
            out[t] = [float(m.double().mean()) for m in moving] + [float(torch.stack(moving).any(0).double().mean())]
    return out


for name, dt in (("uniform_0.3", {"distribution": "constant", "value": 0.3}),
                 ("uniform_1.0", {"distribution": "constant", "value": 1.0})):
    run = {"dataset": {"name": "mnist", "split": "official", "normalize": None, "subset": None}, "seed": 0,
           "variant": {"name": name, "dt": dt}, "model": {"sizes": [784, 256, 256, 10], "activation": "hard_sigmoid"},
           "training": {"epochs": 2, "batch_size": 64, "eval_batch_size": 2000, "lr": [0.2, 0.1, 0.05],
                        "momentum": 0.0, "weight_decay": 0.0, "beta": 0.5, "symmetric": True, "free_steps": 60,
                        "nudged_steps": 12, "loss": "mse", "device": "cpu", "threads": 1, "snapshot_epochs": [],
                        "probe_size": 1000, "residual_tol": TOL}}
    out = f"/tmp/depth-pilot/{name}"
    start = time.perf_counter()
    summary = train_run(run, {"train": "results/data/mnist/fit.pt", "test": "results/data/mnist/validation.pt"}, out)
    print(f"{name}: 2 epochs in {time.perf_counter() - start:.1f} s ({summary['relaxation_engine']}), validation "
          f"accuracy {summary['final_test_acc']:.4f}")
    state = torch.load(f"{out}/model.pt", weights_only=True)
    net = EPNetwork.from_state_dict(state["network"])
    x, _ = as_tensors(load_split("results/data/mnist/validation.pt"), None)
    for t, shares in moving_share(net, x[:1000], max(STEPS)).items():
        print(f"  T1 {t:4d}: moving share layer 1 {shares[0]:.3f} layer 2 {shares[1]:.3f} output {shares[2]:.3f} "
              f"any {shares[3]:.3f}")
