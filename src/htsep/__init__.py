"""Equilibrium Propagation with heterogeneous per-neuron time steps (Kubo, Modi, Patel 2026)."""

__version__ = "0.1.0"

from .model import EPNetwork  # noqa: E402
from .timesteps import sample_time_steps  # noqa: E402

__all__ = ["EPNetwork", "sample_time_steps", "__version__"]
