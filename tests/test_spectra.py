"""The spectral experiment's measure: the relaxation Jacobian and its spectrum (htsep.ep.dynamics) against finite
differences and closed forms, and the dt conditions each trained run is measured under
(htsep.experiments.mechanism.spectra)."""

import pytest
import torch

from htsep.ep.dynamics import (
    coupling_matrix,
    fixed_point_residual,
    relaxation_jacobian,
    relaxation_spectrum,
    spectral_radius,
    symmetric_jacobian,
)
from htsep.ep.model import EPNetwork, phi_gradients
from htsep.experiments.mechanism.spectra import dt_conditions

HTS = {"distribution": "normal", "mean": 0.3, "std": 0.1, "clip_min": 0.1, "clip_max": 0.6}


def linear_net(dt, sizes=(8, 6, 5, 3), seed=1, scale=0.3):
    """A float64 net whose units stay in the hard sigmoid's linear region for states in [0, 1]."""
    net = EPNetwork(list(sizes), dt, seed=seed, dtype=torch.float64)
    net.weights = [scale * w for w in net.weights]
    net.biases = [torch.full_like(b, 0.5) for b in net.biases]
    if isinstance(dt, float):
        net.dt = [torch.full_like(d, dt) for d in net.dt]  # exactly dt in float64 (sampled dt are float32)
    return net


def step_map(net, x):
    """The relaxation step as a function of the flattened free state [B, N]."""
    def f(flat):
        parts = list(torch.split(flat, net.sizes[1:], -1))
        new = net.step(parts, net.drives(x))
        return torch.cat(new, -1)
    return f


def finite_difference_jacobian(net, x, states, eps=1e-6):
    f, flat = step_map(net, x), torch.cat(states, -1)
    eye = torch.eye(flat.shape[-1], dtype=flat.dtype)
    columns = [(f(flat + eps * eye[j]) - f(flat - eps * eye[j])) / (2 * eps) for j in range(flat.shape[-1])]
    return torch.stack(columns, -1)  # [B, N, N]: column j = dF/ds_j


@pytest.mark.parametrize("dt", [0.3, HTS], ids=["uniform", "heterogeneous"])
def test_jacobian_matches_finite_difference(dt):
    torch.manual_seed(0)
    net = linear_net(dt)
    x = torch.rand(5, 8, dtype=torch.float64)
    states = [torch.rand(5, n, dtype=torch.float64) for n in net.sizes[1:]]
    u = torch.cat(phi_gradients(states, net.weights, net.drives(x)), -1)
    assert ((u > 0) & (u < 1)).all()  # every unit in the linear region
    jac = relaxation_jacobian(net, x, states)
    assert jac.shape == (5, 14, 14)
    assert torch.allclose(jac, finite_difference_jacobian(net, x, states), atol=1e-8)
    # The coupling part is the symmetric layered H: blocks W_l between adjacent layers only.
    h = coupling_matrix(net)
    assert torch.equal(h, h.mT) and torch.equal(h[6:11, :6], net.weights[1]) and not h[:6, 11:].any()


def test_saturated_units_have_zero_slope_rows():
    torch.manual_seed(1)
    net = linear_net(HTS)
    net.biases[0][:2] = 5.0  # sigma saturates at 1 ...
    net.biases[1][0] = -5.0  # ... and at 0
    x = torch.rand(4, 8, dtype=torch.float64)
    states = [torch.rand(4, n, dtype=torch.float64) for n in net.sizes[1:]]
    jac = relaxation_jacobian(net, x, states)
    dt = torch.cat(net.dt)
    for i in (0, 1, 6):  # row i = (1 - dt_i) e_i: sigma'(u_i) = 0
        expected = torch.zeros(14, dtype=torch.float64)
        expected[i] = 1 - dt[i]
        assert torch.allclose(jac[:, i], expected.expand(4, -1))
    assert torch.allclose(jac, finite_difference_jacobian(net, x, states), atol=1e-8)


def test_spectrum_is_real_and_matches_eigvals_with_mixed_saturation():
    torch.manual_seed(2)
    nets = [linear_net(d, seed=s, scale=1.5) for d, s in ((0.4, 0), (HTS, 1))]
    for net in nets:  # a different set of saturated units in every sample
        net.biases = [torch.randn_like(b) for b in net.biases]
    net = EPNetwork.stack(nets)  # leading run axis, as for the stacked training
    x = torch.rand(2, 7, 8, dtype=torch.float64)
    states = [torch.rand(2, 7, n, dtype=torch.float64) for n in net.sizes[1:]]
    jac = relaxation_jacobian(net, x, states)
    eig = torch.linalg.eigvals(jac)
    assert eig.imag.abs().max() < 1e-9  # similar to a symmetric matrix
    spectrum = relaxation_spectrum(net, x, states, chunk=3)  # chunked, padded blocks
    assert torch.allclose(spectrum.eigenvalues, eig.real.sort(-1).values, atol=1e-10)
    sym = torch.linalg.eigvalsh(symmetric_jacobian(net, x, states))
    assert torch.allclose(sym, spectrum.eigenvalues, atol=1e-10)
    assert torch.allclose(spectral_radius(jac), spectrum.eigenvalues.abs().amax(-1), atol=1e-10)
    n = spectrum.n_coupled
    assert 0 < int(n.min()) < int(n.max()) < 14  # the padding path is exercised
    coupled = spectrum.coupled
    assert torch.equal(coupled.isfinite().sum(-1), n)
    # dt-free coupling gain: the top eigenvalue of H restricted to each sample's unsaturated units
    u = torch.cat(phi_gradients(states, net.weights, net.drives(x)), -1)
    h = coupling_matrix(net)
    for r in range(2):
        for b in range(7):
            active = torch.nonzero((u[r, b] > 0) & (u[r, b] < 1)).flatten()
            top = torch.linalg.eigvalsh(h[r][active][:, active])[-1]
            assert float(spectrum.coupling_max[r, b]) == pytest.approx(float(top), abs=1e-12)


@pytest.mark.parametrize("dt", [0.2, 0.9])
def test_uniform_spectrum_is_one_minus_dt_plus_dt_times_coupling_eigenvalues(dt):
    # One hidden layer, all units linear: H is bipartite with the singular values of W_2 as +-eigenvalues, so
    # J = (1 - dt) I + dt H has eigenvalues 1 - dt +- dt s_k and 1 - dt (the remaining hidden modes).
    net = linear_net(dt, sizes=(4, 5, 3), scale=0.0)
    singular = torch.tensor([1.6, 0.7, 0.2], dtype=torch.float64)
    u, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    net.weights[1] = (u[:, :3] * singular).mT.contiguous()  # [3, 5] with singular values `singular`
    states = [torch.full((2, 5), 0.1, dtype=torch.float64), torch.full((2, 3), 0.1, dtype=torch.float64)]
    x = torch.zeros(2, 4, dtype=torch.float64)
    rest = torch.full((2,), 1 - dt, dtype=torch.float64)
    expected = torch.cat([1 - dt + dt * singular, 1 - dt - dt * singular, rest]).sort().values
    spectrum = relaxation_spectrum(net, x, states)
    assert int(spectrum.n_coupled.min()) == 8
    assert spectrum.coupling_max.tolist() == pytest.approx([1.6, 1.6], abs=1e-12)  # = 1 - dt (1 - mu_max) below
    assert torch.allclose(spectrum.eigenvalues, expected.expand(2, -1), rtol=0, atol=1e-12)
    rho = max(abs(1 - dt + dt * 1.6), abs(1 - dt - dt * 1.6))
    assert spectral_radius(relaxation_jacobian(net, x, states)) == pytest.approx([rho, rho], abs=1e-12)
    if dt == 0.9:  # 1 - dt - dt * 1.6 < -1: a period-2 mode, the relaxation overshoots
        assert float(spectrum.eigenvalues[0, 0]) < -1


def test_spectral_radius_is_the_contraction_rate_of_the_relaxation():
    torch.manual_seed(3)
    net = linear_net(HTS, scale=0.8)
    x = torch.rand(3, 8, dtype=torch.float64)
    fixed = net.relax(x, 3000)
    assert float(fixed_point_residual(net, x, fixed).max()) < 1e-13
    rho = relaxation_spectrum(net, x, fixed).eigenvalues.abs().amax(-1)
    assert float(rho.max()) < 1
    # Along the slowest eigenvector of J, the nonlinear relaxation's error shrinks by rho every step ...
    eigenvalues, vectors = torch.linalg.eig(relaxation_jacobian(net, x, fixed))
    top = eigenvalues.abs().argmax(-1)
    direction = vectors.real[torch.arange(3), :, top]  # [B, N] (the spectrum is real)
    start = [s + d for s, d in zip(fixed, torch.split(1e-7 * direction, net.sizes[1:], -1), strict=True)]

    def error_after(states, steps):
        states = net.relax(x, steps, init=states)
        return torch.cat([s - f for s, f in zip(states, fixed, strict=True)], -1).norm(dim=-1)

    assert torch.allclose((error_after(start, 10) / error_after(start, 0)) ** 0.1, rho, rtol=1e-5)
    # ... and no perturbation shrinks more slowly than that.
    start = [s + 1e-7 * torch.randn_like(s) for s in fixed]
    assert ((error_after(start, 60) / error_after(start, 0)) ** (1 / 60) <= rho + 1e-6).all()


def test_dt_conditions_swap_uniform_and_hts():
    uniform = [torch.full((4,), 0.2), torch.full((2,), 0.2)]
    hts = [torch.tensor([0.25, 0.3, 0.35, 0.4]), torch.tensor([0.2, 0.3])]
    conditions = dt_conditions(uniform, {"hts_normal": hts}, [0.2, 0.3], swap_hts=True)
    assert [(s, k) for s, k, _ in conditions] == [("own", "own"), ("uniform 0.3", "uniform"),
                                                  ("hts_normal", "hts")]
    assert conditions[2][2] is not uniform and torch.equal(conditions[2][2][0], hts[0])
    conditions = dt_conditions(hts, {"hts_normal": hts}, [0.2, 0.3], swap_hts=True)
    assert [s for s, _, _ in conditions] == ["own", "uniform 0.2", "uniform 0.3"]
    assert float(conditions[2][2][1][0]) == pytest.approx(0.3)
