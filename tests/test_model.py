"""The EP engine: gradients against the true loss gradient, dt changes the path not the fixed point."""

import pytest
import torch

from htsep.ep.model import EPNetwork, mse_loss, one_hot, per_neuron, phi_gradients, relaxation_step

HTS = {"distribution": "normal", "mean": 0.3, "std": 0.1, "clip_min": 0.1, "clip_max": 0.5}


def small_net(dt, seed=3, sizes=(12, 9, 7, 4)):
    net = EPNetwork(list(sizes), dt, seed=seed, dtype=torch.float64)
    # Enlarge weights so most units are unsaturated and the gradient is far from zero.
    net.weights = [2 * w for w in net.weights]
    return net


def true_gradient(net, x, y, free_steps, unroll=300):
    """dLoss/dparam at the free fixed point, by autograd through `unroll` steps started at that point.

    Starting from the (detached) equilibrium, each step maps the fixed point to itself, so backpropagating
    through the unrolled map sums the Neumann series of the implicit-function gradient.
    """
    fixed = [s.detach() for s in net.relax(x, free_steps)]
    params = [p.clone().requires_grad_(True) for p in net.parameters]
    weights, biases = params[: len(net.weights)], params[len(net.weights):]
    states = fixed
    for _ in range(unroll):
        drives = [x @ weights[0].mT + biases[0], *(per_neuron(b) for b in biases[1:])]
        states = relaxation_step(states, weights, drives, net.dt, net.sigma)
    loss = mse_loss(states[-1], one_hot(y, net.sizes[-1], x.dtype)).mean()
    grads = torch.autograd.grad(loss, params)
    return grads[: len(weights)], grads[len(weights):]


def cosine(a, b):
    a = torch.cat([t.flatten() for t in a])
    b = torch.cat([t.flatten() for t in b])
    return float(a @ b / (a.norm() * b.norm()))


@pytest.mark.parametrize("dt", [0.5, HTS], ids=["uniform", "heterogeneous"])
@pytest.mark.parametrize("symmetric", [True, False], ids=["symmetric", "one-sided"])
def test_ep_gradient_matches_true_gradient(dt, symmetric):
    torch.manual_seed(0)
    net = small_net(dt)
    x, y = torch.rand(16, 12, dtype=torch.float64), torch.randint(0, 4, (16,))
    gw, gb = net.ep_gradients(x, y, beta=1e-4, free_steps=800, nudged_steps=800, symmetric=symmetric)
    tw, tb = true_gradient(net, x, y, free_steps=800)
    assert cosine(gw + gb, tw + tb) >= 0.99
    # Not merely parallel: the magnitudes agree too.
    norm = lambda grads: float(torch.cat([g.flatten() for g in grads]).norm())  # noqa: E731
    assert norm(gw) == pytest.approx(norm(tw), rel=0.05)


def test_ep_gradient_sign_convention_descends_the_loss():
    torch.manual_seed(1)
    net = small_net(HTS)
    x, y = torch.rand(32, 12, dtype=torch.float64), torch.randint(0, 4, (32,))
    target = one_hot(y, 4, x.dtype)
    before = mse_loss(net.relax(x, 500)[-1], target).mean()
    gw, gb = net.ep_gradients(x, y, beta=1e-3, free_steps=500, nudged_steps=500)
    net.weights = [w - 0.05 * g for w, g in zip(net.weights, gw, strict=True)]
    net.biases = [b - 0.05 * g for b, g in zip(net.biases, gb, strict=True)]
    assert mse_loss(net.relax(x, 500)[-1], target).mean() < before


def test_dt_changes_the_path_not_the_fixed_point():
    torch.manual_seed(2)
    uniform, hetero = small_net(0.3, seed=5), small_net(HTS, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(uniform.weights, hetero.weights, strict=True))
    x = torch.rand(8, 12, dtype=torch.float64)
    short = [torch.cat(n.relax(x, 3), -1) for n in (uniform, hetero)]
    long = [torch.cat(n.relax(x, 2000), -1) for n in (uniform, hetero)]
    assert (short[0] - short[1]).abs().max() > 1e-2
    assert (long[0] - long[1]).abs().max() < 1e-8


def test_uniform_dt_is_the_scalar_special_case():
    net = EPNetwork([5, 4, 3], 0.25, seed=0)
    assert all(torch.equal(d, torch.full_like(d, 0.25)) for d in net.dt)
    assert [tuple(w.shape) for w in net.weights] == [(4, 5), (3, 4)]


def test_linear_default_init_bounds_and_seed():
    a, b, c = EPNetwork([784, 256, 10], 0.2, seed=0), EPNetwork([784, 256, 10], HTS, seed=0), EPNetwork(
        [784, 256, 10], 0.2, seed=1)
    assert float(a.weights[0].abs().max()) <= 784**-0.5
    assert float(a.weights[0].abs().max()) > 0.95 * 784**-0.5
    assert float(a.weights[0].std()) == pytest.approx(784**-0.5 / 3**0.5, rel=0.02)
    assert torch.equal(a.weights[0], b.weights[0])  # dt spec does not touch the init stream
    assert not torch.equal(a.weights[0], c.weights[0])


def test_relax_needs_target_when_nudged():
    net = EPNetwork([5, 3], 0.5)
    with pytest.raises(ValueError, match="target"):
        net.relax(torch.rand(2, 5), 3, beta=0.1)


def test_states_stay_in_unit_interval():
    net = EPNetwork([6, 5, 3], HTS, seed=0)
    net.weights = [10 * w for w in net.weights]
    for s in net.relax(torch.randn(4, 6) * 5, 50):
        assert float(s.min()) >= 0 and float(s.max()) <= 1


@pytest.mark.parametrize("beta", [0.0, 0.7, -0.4], ids=["free", "nudged", "nudged-negative"])
@pytest.mark.parametrize("stacked", [False, True], ids=["one", "stacked"])
def test_phi_gradients_are_the_gradient_of_the_energy(beta, stacked):
    """The hand-derived dPhi/ds the engine relaxes with is autograd's gradient of Phi (model.energy)."""
    nets = [small_net(HTS, seed=s) for s in range(2 if stacked else 1)]
    net = EPNetwork.stack(nets) if stacked else nets[0]
    gen = torch.Generator().manual_seed(5)
    lead = (2,) if stacked else ()
    x = torch.rand(*lead, 6, 12, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (*lead, 6), generator=gen)
    states = [torch.rand(*lead, 6, n, generator=gen, dtype=torch.float64).requires_grad_() for n in net.sizes[1:]]
    phi = net.energy(states, x, beta, y if beta else None)
    assert phi.shape == (*lead, 6)
    expected = torch.autograd.grad(phi.sum(), states)
    drives = net.drives(x, beta, one_hot(y, 4, x.dtype))
    got = phi_gradients([s.detach() for s in states], net.weights, drives, beta)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)


def test_energy_is_what_the_free_relaxation_climbs_to_a_stationary_point():
    """At the free phase's fixed point no unsaturated unit can raise Phi: dPhi/ds = s there."""
    net, x = small_net(0.5), torch.rand(5, 12, dtype=torch.float64)
    fixed = [s.requires_grad_() for s in net.relax(x, 400)]
    grads = torch.autograd.grad(net.energy(fixed, x).sum(), fixed)
    for s, g in zip(fixed, grads, strict=True):
        inside = (s > 1e-6) & (s < 1 - 1e-6)
        assert inside.any()
        torch.testing.assert_close(g[inside], s.detach()[inside], rtol=0, atol=1e-8)


@pytest.mark.parametrize("fused_kernel", [True, False])
def test_dt_one_is_the_plain_fixed_point_iteration(fused_kernel, monkeypatch):
    """Standard EP (uniform_1.0) relaxes as the public codes do: s <- sigma(dPhi/ds) (exactly with the PyTorch ops,
    to rounding with the fused kernel's s + dt (sigma - s))."""
    from htsep.ep import fused

    monkeypatch.setattr(fused, "enabled", fused_kernel and fused.enabled)
    net = EPNetwork([20, 16, 10], 1.0, seed=4)
    x = torch.rand(8, 20)
    drives = net.drives(x)
    states = net.zero_states(x)
    for _ in range(7):
        states = [net.sigma(g.clone()) for g in phi_gradients(states, net.weights, drives)]
    relaxed = net.relax(x, 7)
    for expected, got in zip(states, relaxed, strict=True):
        if fused.engine(net) == "torch":
            assert torch.equal(expected, got)
        else:
            assert torch.allclose(expected, got, atol=1e-6, rtol=0)
