"""Relaxation dynamics: how (and whether) the free phase reaches its fixed point within T1 steps."""

from __future__ import annotations

import torch

from .model import EPNetwork, relaxation_step


@torch.no_grad()
def relaxation_diagnostics(net: EPNetwork, x: torch.Tensor, steps: int, tol: float) -> dict[str, torch.Tensor]:
    """Free-phase convergence on a probe batch, per run of a stacked network (x: [R, batch, n_in]).

    - steps_to_tol: mean over samples of the step after which max_i |s_t - s_{t-1}| stays below ``tol``
      (``steps + 1`` for a sample that never settles);
    - unconverged_frac: share of samples still moving by ``tol`` or more at step ``steps``;
    - oscillation: mean share of neurons whose update reverses direction from one step to the next.
    """
    drive = net.input_drive(x)
    states = net.zero_states(x)
    last_above = torch.zeros(x.shape[:-1], dtype=torch.long, device=x.device)
    reversals = torch.zeros(x.shape[:-1], dtype=torch.float64, device=x.device)
    previous = None
    for t in range(1, steps + 1):
        new = relaxation_step(states, net.weights, net.biases, net.dt, net.sigma, drive, 0.0, None)
        delta = torch.cat([n - s for n, s in zip(new, states, strict=True)], -1)
        last_above = torch.where(delta.abs().amax(-1) >= tol, t, last_above)
        if previous is not None:
            reversals += (delta * previous < 0).double().mean(-1)
        previous, states = delta, new
    settled = last_above + 1
    return {
        "relax_steps_to_tol": settled.double().mean(-1),
        "relax_unconverged_frac": (settled > steps).double().mean(-1),
        "relax_oscillation": reversals.mean(-1) / max(steps - 1, 1),
    }
