"""Equilibrium Propagation with heterogeneous per-neuron time steps (Kubo, Modi, Patel 2026).

The public API, imported on first use (PEP 562), so that importing one module of the package loads only what that
module needs: ``EPNetwork`` (the network and its EP estimate) and ``sample_time_steps`` (per-neuron dt draws).
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {"EPNetwork": "model", "sample_time_steps": "timesteps"}  # name -> the module that defines it
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
