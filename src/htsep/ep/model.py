"""Layered Equilibrium Propagation with one time step per neuron.

States s_0 = x (clamped), s_1 .. s_L in [0, 1]; weights W_l [n_l, n_{l-1}], biases b_l.

    Phi(s) = sum_l s_l . (W_l s_{l-1} + b_l) - beta * 0.5 * ||s_L - y||^2

    dPhi/ds_l = W_l s_{l-1} + b_l + W_{l+1}^T s_{l+1}          (l < L)
    dPhi/ds_L = W_L s_{L-1} + b_L + beta * (y - s_L)

    s_l <- (1 - dt_l) * s_l + dt_l * sigma(dPhi/ds_l)          (dt_l: one entry per neuron)

Fixed points satisfy s = sigma(dPhi/ds) whatever dt is; dt only shapes the path to them.
With symmetric nudging (Laborieux et al. 2021) the loss gradient is estimated from two nudged equilibria:

    dL/dW_l ~ -(s_l^+ s_{l-1}^+T - s_l^- s_{l-1}^-T) / (2 beta)        (batch mean)

The functions below are written for states of shape [..., batch, n] and parameters of shape [..., out, in], so the
same code trains one network or a stack of R independent networks (leading run axis) in one set of products.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import torch

from ..seeding import torch_rng
from . import fused
from .timesteps import resolve_dt


class Activation(NamedTuple):
    """sigma in its three uses: in place on a freshly computed dPhi/ds (saves a pass over memory every relaxation
    step), out of place under autograd (the backprop reference), and its derivative (the relaxation Jacobian)."""

    in_place: Callable[[torch.Tensor], torch.Tensor]
    autograd: Callable[[torch.Tensor], torch.Tensor]
    derivative: Callable[[torch.Tensor], torch.Tensor]


ACTIVATIONS = {
    # The hard sigmoid's kinks (u = 0, u = 1) count as saturated: sigma' = 0 there, as hardtanh's gradient has it.
    "hard_sigmoid": Activation(lambda u: u.clamp_(0.0, 1.0), lambda u: torch.nn.functional.hardtanh(u, 0.0, 1.0),
                               lambda u: ((u > 0) & (u < 1)).to(u.dtype)),
    "sigmoid": Activation(torch.sigmoid_, torch.sigmoid, lambda u: torch.sigmoid(u) * (1 - torch.sigmoid(u))),
}

States = list[torch.Tensor]


def per_neuron(v: torch.Tensor) -> torch.Tensor:
    """View a per-neuron vector [..., n] so it broadcasts over the batch axis of states [..., batch, n]."""
    return v.unsqueeze(-2)


def add_matmul(c: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """c + a @ b in one fused BLAS call (addmm, or baddbmm for a leading run axis)."""
    return torch.baddbmm(c, a, b) if a.dim() == 3 else torch.addmm(c, a, b)


def energy(states: States, x: torch.Tensor, weights, biases, target=None, beta: float = 0.0) -> torch.Tensor:
    """Phi per sample [..., batch]: sum_l s_l . (W_l s_{l-1} + b_l) - beta * 0.5 * ||s_L - y||^2 (s_0 = x).

    The executable specification of the model: phi_gradients is its gradient in the states (tested with autograd).
    """
    layers = [x, *states]
    phi = sum((s * (layers[l] @ weights[l].mT + per_neuron(biases[l]))).sum(-1) for l, s in enumerate(states))
    return phi - beta * mse_loss(states[-1], target) if beta else phi


def phi_gradients(states: States, weights, drives, beta: float = 0.0) -> States:
    """dPhi/ds_l for every free layer.

    ``drives[l]`` is the part that does not depend on the free states (see EPNetwork.drives): W_1 x + b_1 for
    the first layer, b_l (as a row, per_neuron(b_l)) for the others, and b_L + beta y at a nudged output; what
    is left of beta (y - s_L) is the -beta s_L below.
    """
    last = len(states) - 1
    grads = []
    for l, s in enumerate(states):
        # + W_l s_{l-1}, formed as (W_l s_{l-1}^T)^T: BLAS is much faster with the few outputs (10) as rows
        g = drives[l] if l == 0 else add_matmul(drives[l].mT, weights[l], states[l - 1].mT).mT
        if l < last:
            g = add_matmul(g, states[l + 1], weights[l + 1])  # + W_{l+1}^T s_{l+1}
        elif beta:
            g = torch.add(g, s, alpha=-beta)
        grads.append(g)
    return grads


def relaxation_step(states: States, weights, drives, dt_rows, sigma, beta: float = 0.0) -> States:
    """One synchronous update s_l <- (1 - dt_l) s_l + dt_l sigma(dPhi/ds_l) of all layers.

    ``dt_rows[l]`` is dt_l as a row that broadcasts over the batch: per_neuron(dt_l), [..., 1, n_l].
    """
    grads = phi_gradients(states, weights, drives, beta)
    fresh = [g.clone() if g is c else g for g, c in zip(grads, drives, strict=True)]  # a lone layer's free drive
    return [torch.lerp(s, sigma(g), d) for s, g, d in zip(states, fresh, dt_rows, strict=True)]


def ep_parameter_gradients(x, plus: States, minus: States, scale: float):
    """-(dPhi/dtheta(s^+) - dPhi/dtheta(s^-)) / scale, batch-averaged: the EP estimate of dLoss/dtheta.

    The input layer is the same in both phases, so layer 1 needs one product (s_1^- - s_1^+)^T x. The factor
    1 / (scale * batch) is applied to the small state matrices, not to the products.
    """
    c = 1.0 / (scale * x.shape[-2])
    deltas = [(m - p) * c for p, m in zip(plus, minus, strict=True)]
    grad_w = [deltas[0].mT @ x]
    for l in range(1, len(plus)):  # c (s_l^- s_{l-1}^-T - s_l^+ s_{l-1}^+T)
        grad_w.append(add_matmul((minus[l] * c).mT @ minus[l - 1], (plus[l] * -c).mT, plus[l - 1]))
    grad_b = [d.sum(-2) for d in deltas]
    return grad_w, grad_b


class EPEstimate(NamedTuple):
    grad_weights: list[torch.Tensor]
    grad_biases: list[torch.Tensor]
    free_states: States


def one_hot(y: torch.Tensor, n_classes: int, dtype) -> torch.Tensor:
    """Targets for the output layer: integer labels become one-hot rows; float targets pass through."""
    if y.dtype.is_floating_point:
        return y.to(dtype)
    return torch.nn.functional.one_hot(y, n_classes).to(dtype)


class EPNetwork:
    """A layered EP network whose neurons each have their own time step.

    ``dt`` may be a number (uniform), a dt spec or list of per-layer specs (sampled from ``seed``'s dt stream),
    or a list of per-layer tensors. Weights follow torch.nn.Linear's default init, drawn from ``seed``.
    """

    def __init__(self, sizes: Sequence[int], dt, activation: str = "hard_sigmoid", seed: int = 0,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        if len(sizes) < 2:
            raise ValueError(f"sizes: need at least input and output sizes, got {list(sizes)}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.sizes = list(sizes)
        self.activation = activation
        self.sigma = ACTIVATIONS[activation].in_place
        gen = torch_rng(seed, "init")
        self.weights, self.biases = [], []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = n_in**-0.5  # nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b
            self.weights.append(((torch.rand(n_out, n_in, generator=gen) * 2 - 1) * bound).to(device, dtype))
            self.biases.append(((torch.rand(n_out, generator=gen) * 2 - 1) * bound).to(device, dtype))
        self.dt = [d.to(device, dtype) for d in resolve_dt(dt, sizes, seed)]

    @property
    def parameters(self) -> list[torch.Tensor]:
        return self.weights + self.biases

    def drives(self, x: torch.Tensor, beta: float = 0.0, target=None) -> list[torch.Tensor]:
        """The state-independent part of dPhi/ds_l: W_1 x + b_1 (x is clamped), b_l, and b_L + beta y at a
        nudged output. Computed once per batch; the input drive is shared by the free and nudged phases."""
        drives = [add_matmul(per_neuron(self.biases[0]), x, self.weights[0].mT)]
        drives += [per_neuron(b) for b in self.biases[1:]]
        return self.nudged(drives, beta, target) if beta else drives

    @staticmethod
    def nudged(drives: list[torch.Tensor], beta: float, target: torch.Tensor) -> list[torch.Tensor]:
        return [*drives[:-1], drives[-1] + beta * target]

    def zero_states(self, x: torch.Tensor) -> States:
        return [x.new_zeros(*x.shape[:-1], n) for n in self.sizes[1:]]

    def energy(self, states: States, x, beta: float = 0.0, target=None) -> torch.Tensor:
        """Phi of ``states`` for input ``x`` (see energy)."""
        if target is not None:
            target = one_hot(target, self.sizes[-1], x.dtype)
        return energy(states, x, self.weights, self.biases, target, beta)

    def step(self, states: States, drives, beta: float = 0.0) -> States:
        """One relaxation step of this network (see relaxation_step)."""
        return relaxation_step(states, self.weights, drives, [per_neuron(d) for d in self.dt], self.sigma, beta)

    def relax_phases(self, drives, init: States, steps: int, beta: float = 0.0, branches=()) -> list[States]:
        """``steps`` updates from ``init``, then each branch (drives_k, steps_k, beta_k) relaxed on from that
        result (EP's nudged phases from the free state); returns [states, *branch states]."""
        if fused.applies(self, drives, init):  # the same steps as one compiled loop (see htsep.ep.fused)
            return fused.relax(self, drives, init, steps, beta, branches)
        dt_rows = [per_neuron(d) for d in self.dt]

        def run(states, drives, steps, beta):
            for _ in range(steps):
                states = relaxation_step(states, self.weights, drives, dt_rows, self.sigma, beta)
            return states

        states = run(init, drives, steps, beta)
        return [states, *(run(states, *branch) for branch in branches)]

    def relax(self, x, steps: int, beta: float = 0.0, target=None, init: States | None = None) -> States:
        """Run ``steps`` updates from ``init`` (zero states by default); returns [s_1, ..., s_L]."""
        if beta and target is None:
            raise ValueError("relax: a nudged phase (beta != 0) needs a target")
        if target is not None:
            target = one_hot(target, self.sizes[-1], x.dtype)
        return self.relax_phases(self.drives(x, beta, target), init or self.zero_states(x), steps, beta)[0]

    def ep_phases(self, x, y, beta: float, free_steps: int, nudged_steps: int,
                  symmetric: bool = True) -> tuple[States, States, States]:
        """(free, plus, minus): the free phase from zero states, then the +beta phase and (``symmetric``) the -beta
        phase from the free equilibrium, in one relax_phases call; without ``symmetric`` minus is the free state."""
        target = one_hot(y, self.sizes[-1], x.dtype)
        drives = self.drives(x)  # the input drive W_1 x + b_1 is shared by all phases
        nudges = [(self.nudged(drives, b, target), nudged_steps, b) for b in ((beta, -beta) if symmetric else (beta,))]
        free, plus, *minus = self.relax_phases(drives, self.zero_states(x), free_steps, branches=nudges)
        return free, plus, minus[0] if symmetric else free

    def ep_estimate(self, x, y, beta: float, free_steps: int, nudged_steps: int, symmetric: bool = True) -> EPEstimate:
        """Free phase from zero states, then nudged phase(s) from the free equilibrium; returns the EP gradient."""
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        free, plus, minus = self.ep_phases(x, y, beta, free_steps, nudged_steps, symmetric)
        return EPEstimate(*ep_parameter_gradients(x, plus, minus, 2 * beta if symmetric else beta), free)

    def ep_gradients(self, x, y, beta: float, free_steps: int, nudged_steps: int, symmetric: bool = True):
        """(grad_weights, grad_biases): the EP estimate of dLoss/dparam (a descent direction)."""
        est = self.ep_estimate(x, y, beta, free_steps, nudged_steps, symmetric)
        return est.grad_weights, est.grad_biases

    def predict(self, x, steps: int) -> torch.Tensor:
        return self.relax(x, steps)[-1].argmax(-1)

    @classmethod
    def stack(cls, nets: Sequence[EPNetwork]) -> EPNetwork:
        """R networks of one architecture as one with a leading run axis: weights [R, out, in], dt [R, n]."""
        first = nets[0]
        if any(n.sizes != first.sizes or n.activation != first.activation for n in nets):
            raise ValueError("stack: all networks need the same sizes and activation")
        stacked = cls.__new__(cls)
        stacked.sizes, stacked.activation, stacked.sigma = first.sizes, first.activation, first.sigma
        stacked.weights = [torch.stack(ws) for ws in zip(*(n.weights for n in nets), strict=True)]
        stacked.biases = [torch.stack(bs) for bs in zip(*(n.biases for n in nets), strict=True)]
        stacked.dt = [torch.stack(ds) for ds in zip(*(n.dt for n in nets), strict=True)]
        return stacked

    def member(self, r: int) -> EPNetwork:
        """Network ``r`` of a stacked network (a copy)."""
        net = copy.copy(self)
        net.weights, net.biases, net.dt = ([t[r].clone() for t in ts] for ts in (self.weights, self.biases, self.dt))
        return net

    def state_dict(self) -> dict:
        return {"sizes": self.sizes, "activation": self.activation, "weights": self.weights,
                "biases": self.biases, "dt": self.dt}

    @classmethod
    def from_state_dict(cls, state: Mapping, device="cpu") -> EPNetwork:
        net = cls(state["sizes"], [d.cpu() for d in state["dt"]], state["activation"], device=device)
        net.weights = [w.to(device) for w in state["weights"]]
        net.biases = [b.to(device) for b in state["biases"]]
        return net


def mse_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """0.5 * ||s_L - y||^2 per sample."""
    return 0.5 * (output - target).pow(2).sum(-1)
