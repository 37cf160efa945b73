"""Relaxation diagnostics: settle time, unconverged share and oscillation respond to dt as they must."""

import pytest
import torch

from htsep.ep.dynamics import relaxation_diagnostics
from htsep.ep.model import EPNetwork


def stacked(dts, scale=1.0, seed=0):
    nets = [EPNetwork([20, 16, 5], dt, seed=seed, dtype=torch.float64) for dt in dts]
    for net in nets:
        net.weights = [scale * w for w in net.weights]
    return EPNetwork.stack(nets)


def test_smaller_dt_settles_later():
    net = stacked([0.1, 0.5])
    x = torch.rand(2, 32, 20, dtype=torch.float64)
    d = relaxation_diagnostics(net, x, steps=400, tol=1e-6)
    slow, fast = d["relax_steps_to_tol"].tolist()
    assert fast < slow <= 400
    assert d["relax_unconverged_frac"].tolist() == [0.0, 0.0]


def test_truncated_relaxation_counts_as_unconverged():
    d = relaxation_diagnostics(stacked([0.05]), torch.rand(1, 16, 20, dtype=torch.float64), steps=10, tol=1e-6)
    assert float(d["relax_unconverged_frac"][0]) == 1.0 and float(d["relax_steps_to_tol"][0]) == 11


def test_overshooting_dynamics_oscillate():
    # Strong couplings with dt = 1 make the synchronous update overshoot; a small dt damps it.
    torch.manual_seed(0)
    net = stacked([1.0, 0.2], scale=2.0, seed=1)
    d = relaxation_diagnostics(net, torch.rand(2, 64, 20, dtype=torch.float64), steps=60, tol=1e-6)
    jumpy, damped = d["relax_oscillation"].tolist()
    assert jumpy > 0.02 and damped < jumpy / 5
    assert 0 <= damped and jumpy <= 1
    assert d["relax_steps_to_tol"].shape == (2,)


def test_values_are_per_run_of_the_stack():
    a = relaxation_diagnostics(stacked([0.3]), torch.ones(1, 8, 20, dtype=torch.float64), 50, 1e-5)
    both = relaxation_diagnostics(stacked([0.3, 0.3]), torch.ones(2, 8, 20, dtype=torch.float64), 50, 1e-5)
    assert both["relax_steps_to_tol"][0] == pytest.approx(float(a["relax_steps_to_tol"][0]))


def test_diagnostics_match_their_definitions_on_one_traced_trajectory():
    # Reference: step each sample with net.step and apply the docstring's definitions literally.
    torch.manual_seed(3)
    net = stacked([0.9], scale=2.0, seed=2)
    x = torch.rand(1, 12, 20, dtype=torch.float64)
    steps, tol = 30, 1e-3
    d = relaxation_diagnostics(net, x, steps, tol)
    states, drives, deltas = net.zero_states(x), net.drives(x), []
    for _ in range(steps):
        new = net.step(states, drives)
        deltas.append(torch.cat([n - s for n, s in zip(new, states, strict=True)], -1)[0])  # [batch, neurons]
        states = new
    settled, reversals = [], []
    for b in range(x.shape[1]):
        above = [t + 1 for t in range(steps) if deltas[t][b].abs().max() >= tol]
        settled.append((above[-1] if above else 0) + 1)
        flips = [(deltas[t][b] * deltas[t - 1][b] < 0).double().mean() for t in range(1, steps)]
        reversals.append(float(sum(flips)) / (steps - 1))
    assert float(d["relax_steps_to_tol"][0]) == pytest.approx(sum(settled) / len(settled))
    assert float(d["relax_unconverged_frac"][0]) == pytest.approx(sum(s > steps for s in settled) / len(settled))
    assert float(d["relax_oscillation"][0]) == pytest.approx(sum(reversals) / len(reversals), rel=1e-12)
    assert 0 < float(d["relax_oscillation"][0]) < 1
