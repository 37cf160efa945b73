"""SGD as ``torch.optim.SGD(..., fused=True)`` computes it, without ``torch.optim.Optimizer``, whose first use imports
torch._dynamo: about 1 s of every training job's start, a quarter of what a job spends outside its epochs.

The update is torch's own functional SGD (``torch.optim.sgd.sgd``, fused), the function ``SGD.step`` calls, so the
numbers are torch's (tests/test_train.py compares them bitwise); ``state_dict`` has torch.optim's format.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch.optim.sgd import sgd

SETTINGS = {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False, "maximize": False,
            "foreach": None, "differentiable": False, "fused": True}


class FusedSGD:
    """Parameter groups ``[{"params": [...], "lr": ...}, ...]`` sharing ``momentum`` and ``weight_decay``."""

    def __init__(self, groups: list[dict], momentum: float, weight_decay: float):
        self.param_groups = [{**SETTINGS, "momentum": momentum, "weight_decay": weight_decay, **g} for g in groups]
        self.state: defaultdict[torch.Tensor, dict] = defaultdict(dict)  # p -> {"momentum_buffer": t}, as torch's

    @property
    def params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (momentum buffers are created by the first)."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            buffers = [self.state[p].get("momentum_buffer") for p in params]
            sgd(params, [p.grad for p in params], buffers, fused=True, weight_decay=group["weight_decay"],
                momentum=group["momentum"], lr=group["lr"], dampening=group["dampening"],
                nesterov=group["nesterov"], maximize=group["maximize"])
            if group["momentum"]:
                for p, buffer in zip(params, buffers, strict=True):
                    self.state[p]["momentum_buffer"] = buffer

    def zero_grad(self) -> None:
        """Drop every gradient (torch.optim's default, set_to_none)."""
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict:
        """{"state": {index: {"momentum_buffer": ...}}, "param_groups": [{..., "params": [indices]}]} (torch's)."""
        index = {p: i for i, p in enumerate(self.params)}
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[p] for p in g["params"]]}
                  for g in self.param_groups]
        return {"state": {index[p]: dict(s) for p, s in self.state.items() if s}, "param_groups": groups}

    def load_state_dict(self, state: dict) -> None:
        """The settings and (copies of the) momentum buffers of ``state``, for the same parameter layout."""
        if [len(g["params"]) for g in state["param_groups"]] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("load_state_dict: the saved parameter groups do not match this optimizer's")
        for group, saved in zip(self.param_groups, state["param_groups"], strict=True):
            group.update({k: v for k, v in saved.items() if k != "params"})
        params = self.params
        self.state = defaultdict(dict, {params[int(i)]: {k: v.to(params[int(i)]).clone() for k, v in s.items()}
                                        for i, s in state["state"].items()})
