"""Relaxation dynamics: how (and whether) the free phase reaches its fixed point within T1 steps."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from .model import ACTIVATIONS, EPNetwork, per_neuron, phi_gradients, relaxation_step


@torch.no_grad()
def relaxation_diagnostics(net: EPNetwork, x: torch.Tensor, steps: int, tol: float) -> dict[str, torch.Tensor]:
    """Free-phase convergence on a probe batch, per run of a stacked network (x: [R, batch, n_in]).

    - steps_to_tol: mean over samples of the step after which max_i |s_t - s_{t-1}| stays below ``tol``
      (``steps + 1`` for a sample that never settles);
    - unconverged_frac: share of samples still moving by ``tol`` or more at step ``steps``;
    - oscillation: mean share of neurons whose update reverses direction from one step to the next;
    - unconverged_frac_l<l>: the share still moving by ``tol`` in layer l (1: the first hidden layer) at ``steps``.
    """
    drives, dt_rows = net.drives(x), [per_neuron(d) for d in net.dt]
    states = net.zero_states(x)
    last_above = torch.zeros(x.shape[:-1], dtype=torch.long, device=x.device)
    moving = [last_above] * len(states)  # per layer: moving by tol at the last step
    reversals = torch.zeros(x.shape[:-1], dtype=torch.long, device=x.device)  # summed over neurons and steps
    previous = None
    for t in range(1, steps + 1):  # per layer, no concatenation: this runs on every probe sample each epoch
        new = relaxation_step(states, net.weights, drives, dt_rows, net.sigma)
        delta = [n - s for n, s in zip(new, states, strict=True)]
        layer_largest = torch.stack([d.abs().amax(-1) for d in delta])
        last_above = torch.where(layer_largest.amax(0) >= tol, t, last_above)
        moving = layer_largest >= tol
        if previous is not None:
            reversals += sum(torch.count_nonzero(d * p < 0, -1) for d, p in zip(delta, previous, strict=True))
        previous, states = delta, new
    settled = last_above + 1
    return {
        "relax_steps_to_tol": settled.double().mean(-1),
        "relax_unconverged_frac": (settled > steps).double().mean(-1),
        "relax_oscillation": (reversals.double() / sum(net.sizes[1:])).mean(-1) / max(steps - 1, 1),
        **{f"relax_unconverged_frac_l{l + 1}": m.double().mean(-1) for l, m in enumerate(moving)},
    }


@torch.no_grad()
def moving_shares(net: EPNetwork, x: torch.Tensor, checkpoints: Sequence[int], tol: float) -> dict[int, torch.Tensor]:
    """Free phase on ``x`` (one network, [batch, n_in]): at each step count in ``checkpoints``, the share of samples
    still moving by ``tol`` at that step, per layer (1: the first hidden layer) and in any layer ([L + 1] values)."""
    drives, dt_rows = net.drives(x), [per_neuron(d) for d in net.dt]
    states, shares = net.zero_states(x), {}
    for t in range(1, max(checkpoints) + 1):
        new = relaxation_step(states, net.weights, drives, dt_rows, net.sigma)
        if t in checkpoints:
            moving = torch.stack([(n - s).abs().amax(-1) >= tol for n, s in zip(new, states, strict=True)])
            shares[t] = torch.cat([moving.double().mean(-1), moving.any(0).double().mean().reshape(1)])
        states = new
    return shares


@torch.no_grad()
def dead_units(net: EPNetwork, x: torch.Tensor, y: torch.Tensor, training: dict) -> dict[str, torch.Tensor]:
    """Units that EP can no longer train, on a probe batch (x [R, batch, n_in], labels y [batch]), per run.

    - dead_frac_l{l}: share of layer l's units whose state is identical in both nudged phases on every sample,
      so their bias (and, when stuck at 0, their incoming weights) get an EP update of exactly zero;
      dead0_frac_l{l} / dead1_frac_l{l}: those stuck at 0 / at 1 on every sample;
    - out_dead_analytic_frac: output units whose free-state drive W_L s_{L-1} + b_L is below -beta on every
      sample: even their own class's nudge (+beta (1 - s)) leaves their input below 0, an absorbing state of the
      hard sigmoid under MSE.
    """
    beta = training["beta"]
    free, plus, minus = net.ep_phases(x, y, beta, training["free_steps"], training["nudged_steps"],
                                      training["symmetric"])
    out = {}
    for l, (p, m) in enumerate(zip(plus, minus, strict=True), start=1):
        dead = (p == m).all(-2)
        out[f"dead_frac_l{l}"] = dead.double().mean(-1)
        out[f"dead0_frac_l{l}"] = (dead & (p == 0).all(-2)).double().mean(-1)
        out[f"dead1_frac_l{l}"] = (dead & (p == 1).all(-2)).double().mean(-1)
    drive = [x, *free][-2] @ net.weights[-1].mT + per_neuron(net.biases[-1])
    out["out_dead_analytic_frac"] = (drive < -beta).all(-2).double().mean(-1)
    return out


# ------------------------------------------------------------------------------ linear stability at a state
#
# The relaxation map F(s) = (1 - D) s + D sigma(u(s)), u = dPhi/ds, has the Jacobian
#
#     J = I - D + D diag(sigma'(u)) H,        H = d2Phi/ds2 (free phase: the couplings W_l between adjacent layers)
#
# over all free neurons s = [s_1, ..., s_L] (N = n_1 + ... + n_L), with D = diag(dt). Since sigma' >= 0 and H is
# symmetric, J is similar to the symmetric K = I - D + Q H Q with Q = diag(sqrt(dt sigma'(u))) (for sigma' > 0,
# Q^-1 K Q = J^T; a saturated unit's row of J is (1 - dt_i) e_i, which K reproduces): the spectrum of J is real
# for any dt. Its eigenvalues near +1 are slow modes; those below -1 flip sign every step (a period-2 oscillation).


def coupling_matrix(net: EPNetwork, beta: float = 0.0) -> torch.Tensor:
    """H = d2Phi/ds2 over the free neurons, [..., N, N]: block (l, l-1) = W_l, block (l-1, l) = W_l^T
    (layers counted from the first free one); ``beta`` adds the nudging term -beta on the output block."""
    sizes = net.sizes[1:]
    offsets = [0]
    for n in sizes:
        offsets.append(offsets[-1] + n)
    lead = net.weights[0].shape[:-2]
    ref = net.weights[0]
    h = ref.new_zeros(*lead, offsets[-1], offsets[-1])
    for l in range(1, len(sizes)):  # weights[l] couples free layer l-1 (input side) to free layer l
        rows, cols = slice(offsets[l], offsets[l + 1]), slice(offsets[l - 1], offsets[l])
        h[..., rows, cols] = net.weights[l]
        h[..., cols, rows] = net.weights[l].mT
    if beta:
        out = torch.arange(offsets[-2], offsets[-1], device=ref.device)
        h[..., out, out] -= beta
    return h


def _linearisation(net: EPNetwork, x: torch.Tensor, states, beta: float = 0.0, target=None):
    """(dt [..., 1, N], sigma'(u) [..., B, N], H [..., 1, N, N]) at ``states`` (a list [..., B, n_l] per layer)."""
    grads = phi_gradients(states, net.weights, net.drives(x, beta, target), beta)
    u = torch.cat(grads, -1)
    derivative = ACTIVATIONS[net.activation].derivative(u)
    dt = torch.cat(net.dt, -1).unsqueeze(-2).to(u.dtype)
    return dt, derivative, coupling_matrix(net, beta).unsqueeze(-3).to(u.dtype)


def relaxation_jacobian(net: EPNetwork, x: torch.Tensor, states, beta: float = 0.0, target=None) -> torch.Tensor:
    """Per-sample Jacobian dF/ds of one relaxation step at ``states``: J = I - D + D diag(sigma'(u)) H.

    ``x`` [..., B, n_in], ``states`` [s_1, ..., s_L] each [..., B, n_l] (leading run axis as for the network);
    returns [..., B, N, N] with N the number of free neurons (row i: d s_i' / d s_j).
    """
    dt, derivative, h = _linearisation(net, x, states, beta, target)
    eye = torch.eye(h.shape[-1], dtype=h.dtype, device=h.device)
    return eye - torch.diag_embed(dt.expand_as(derivative)) + (dt * derivative).unsqueeze(-1) * h


def symmetric_jacobian(net: EPNetwork, x: torch.Tensor, states, beta: float = 0.0, target=None) -> torch.Tensor:
    """K = I - D + Q H Q, Q = diag(sqrt(dt sigma'(u))): symmetric, with exactly the eigenvalues of
    ``relaxation_jacobian`` (see the note above); [..., B, N, N]."""
    dt, derivative, h = _linearisation(net, x, states, beta, target)
    q = (dt * derivative).clamp_min(0).sqrt()
    eye = torch.eye(h.shape[-1], dtype=h.dtype, device=h.device)
    return eye - torch.diag_embed(dt.expand_as(derivative)) + q.unsqueeze(-1) * h * q.unsqueeze(-2)


def jacobian_eigenvalues(jacobian: torch.Tensor) -> torch.Tensor:
    """Complex eigenvalues of (a batch of) general square matrices [..., N, N] -> [..., N]."""
    return torch.linalg.eigvals(jacobian)


def spectral_radius(jacobian: torch.Tensor) -> torch.Tensor:
    """max_k |lambda_k| of each matrix in [..., N, N] (torch.linalg.eigvals; any square matrix) -> [...]."""
    return jacobian_eigenvalues(jacobian).abs().amax(-1)


class Spectrum(NamedTuple):
    """Eigenvalues of the relaxation Jacobian at a state, per sample (all real; see ``relaxation_spectrum``)."""

    eigenvalues: torch.Tensor  # [..., B, N] ascending: the coupled units' modes and 1 - dt_i of every other unit
    coupled: torch.Tensor  # [..., B, N] the modes of the coupled block (units with dt sigma' > 0), NaN-padded
    n_coupled: torch.Tensor  # [..., B] number of coupled units
    coupling_max: torch.Tensor  # [..., B] largest eigenvalue of H on the coupled units (dt-free; NaN if none)


@torch.no_grad()
def relaxation_spectrum(net: EPNetwork, x: torch.Tensor, states, chunk: int = 128) -> Spectrum:
    """The eigenvalues of the free-phase relaxation Jacobian at ``states`` (float64, ``chunk`` samples at a time).

    J is similar to the symmetric K (see the note above), so its spectrum is real and eigvalsh of K gives it. A unit
    with dt sigma'(u) = 0 (saturated) is decoupled in K: it contributes the eigenvalue 1 - dt_i, and only the block of
    coupled units is decomposed (padded to the chunk's largest block with decoupled units parked far below it).
    """
    eigenvalues, coupled, counts, coupling = [], [], [], []
    for start in range(0, x.shape[-2], chunk):
        part = slice(start, start + chunk)
        dt, derivative, h = _linearisation(net, x[..., part, :], [s[..., part, :] for s in states])
        gain = (dt * derivative).double()
        h = h.double().expand(*gain.shape[:-1], *h.shape[-2:])
        dt = dt.double().expand_as(gain)
        is_coupled = gain > 0
        n = is_coupled.sum(-1)
        order = torch.argsort((~is_coupled).to(torch.int8), dim=-1, stable=True)  # coupled units first
        m = int(n.max()) if n.numel() else 0
        head, tail = order[..., :m], order[..., m:]
        head_coupled = is_coupled.gather(-1, head)
        q = gain.gather(-1, head).sqrt()
        h_block = h.gather(-2, head.unsqueeze(-1).expand(*head.shape, h.shape[-1]))
        h_block = h_block.gather(-1, head.unsqueeze(-2).expand(*head.shape, m))
        block = q.unsqueeze(-1) * h_block * q.unsqueeze(-2)
        diagonal = 1 - dt.gather(-1, head)
        # Gershgorin: every coupled mode is >= -bound, so padding units parked at -2 bound - 1 sort first.
        bound = (block.abs().sum(-1) + diagonal.abs()).amax(-1, keepdim=True) if m else gain.new_zeros(0)
        k = torch.diag_embed(torch.where(head_coupled, diagonal, -2 * bound - 1)) + block
        modes = torch.linalg.eigvalsh(k)  # ascending; the first m - n are the parked padding units
        padding = (torch.arange(m, device=modes.device) < (m - n).unsqueeze(-1))
        parked = torch.where(head_coupled, math.inf, diagonal).sort(-1).values  # padding units' 1 - dt first
        full = torch.cat([torch.where(padding, parked, modes), 1 - dt.gather(-1, tail)], -1)
        eigenvalues.append(full.sort(-1).values)
        # Coupled modes, ascending, moved to the front and NaN-padded to N.
        shift = torch.argsort(padding.to(torch.int8), dim=-1, stable=True)
        modes = torch.where(padding, math.nan, modes).gather(-1, shift)
        coupled.append(torch.cat([modes, modes.new_full(tail.shape, math.nan)], -1))
        counts.append(n)
        # dt-free: the top eigenvalue of H on the coupled units (>= 1: the state is no stable fixed point, any dt).
        pair = head_coupled.unsqueeze(-1) & head_coupled.unsqueeze(-2)
        h_block = torch.where(pair, h_block, 0.0)
        h_bound = h_block.abs().sum(-1).amax(-1, keepdim=True) if m else gain.new_zeros(0)
        h_block = h_block + torch.diag_embed(torch.where(head_coupled, 0.0, -2 * h_bound - 1))
        top = torch.linalg.eigvalsh(h_block)[..., -1] if m else gain.new_zeros(n.shape)
        coupling.append(torch.where(n > 0, top, math.nan))
    return Spectrum(torch.cat(eigenvalues, -2), torch.cat(coupled, -2), torch.cat(counts, -1),
                    torch.cat(coupling, -1))


@torch.no_grad()
def fixed_point_residual(net: EPNetwork, x: torch.Tensor, states) -> torch.Tensor:
    """max_i |F(s)_i - s_i| per sample [..., B]: how far ``states`` is from a fixed point of the free relaxation."""
    new = net.step(states, net.drives(x))
    return torch.cat([n - s for n, s in zip(new, states, strict=True)], -1).abs().amax(-1)
