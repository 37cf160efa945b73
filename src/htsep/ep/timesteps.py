"""Per-neuron time steps dt_i: the distributions the paper draws them from.

A spec is a mapping such as ``{"distribution": "normal", "mean": 0.3, "std": 0.05, "clip_min": 0.2,
"clip_max": 0.4}``. Every draw is clipped to ``[clip_min, clip_max]``; the result must lie in (0, 1] or the
spec is rejected. ``lognormal`` and ``gamma`` take the mean and std of dt itself (moment matching), so all
heterogeneous variants can be compared at the same first two moments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..seeding import numpy_rng

if TYPE_CHECKING:  # torch is imported where a draw becomes a tensor: the config checks need only numpy
    import torch

DEFAULT_CLIP = (1e-3, 1.0)

# Parameters each distribution needs (besides the optional clip bounds).
DISTRIBUTIONS = {
    "constant": ("value",),
    "normal": ("mean", "std"),
    "lognormal": ("mean", "std"),
    "gamma": ("mean", "std"),
    "uniform": ("low", "high"),
}


class TimeStepSpecError(ValueError):
    """A dt spec that cannot produce time steps in (0, 1]."""


def validate_spec(spec: Mapping, where: str = "dt") -> None:
    """Raise TimeStepSpecError naming ``where`` if ``spec`` is not a usable dt distribution."""
    name = spec.get("distribution")
    if name not in DISTRIBUTIONS:
        raise TimeStepSpecError(f"{where}.distribution: expected one of {sorted(DISTRIBUTIONS)}, got {name!r}")
    allowed = set(DISTRIBUTIONS[name]) | {"distribution", "clip_min", "clip_max"}
    unknown = set(spec) - allowed
    if unknown:
        raise TimeStepSpecError(
            f"{where}: unknown key(s) {sorted(unknown)} for a {name} dt (allowed {sorted(allowed)})")
    for key in DISTRIBUTIONS[name]:
        if not isinstance(spec.get(key), int | float):
            raise TimeStepSpecError(f"{where}.{key}: a number is required for a {name} dt, got {spec.get(key)!r}")
    lo, hi = spec.get("clip_min", DEFAULT_CLIP[0]), spec.get("clip_max", DEFAULT_CLIP[1])
    if not 0 < lo <= hi <= 1:
        raise TimeStepSpecError(f"{where}: need 0 < clip_min <= clip_max <= 1, got clip_min={lo}, clip_max={hi}")
    if name == "constant" and not 0 < spec["value"] <= 1:
        raise TimeStepSpecError(f"{where}.value: dt must lie in (0, 1], got {spec['value']}")
    if name in ("normal", "lognormal", "gamma"):
        if spec["std"] < 0:
            raise TimeStepSpecError(f"{where}.std: must be >= 0, got {spec['std']}")
        if name != "normal" and spec["mean"] <= 0:
            raise TimeStepSpecError(f"{where}.mean: a {name} dt needs mean > 0, got {spec['mean']}")
    if name == "uniform" and not spec["low"] <= spec["high"]:
        raise TimeStepSpecError(f"{where}: uniform needs low <= high, got low={spec['low']}, high={spec['high']}")


def _draw(n: int, spec: Mapping, rng: np.random.Generator) -> np.ndarray:
    name = spec["distribution"]
    if name == "constant":
        return np.full(n, float(spec["value"]))
    if name == "uniform":
        return rng.uniform(spec["low"], spec["high"], n)
    mean, std = float(spec["mean"]), float(spec["std"])
    if std == 0:
        return np.full(n, mean)
    if name == "normal":
        return rng.normal(mean, std, n)
    if name == "lognormal":
        # dt = exp(N(mu, sigma^2)) with E[dt] = mean, Std[dt] = std.
        sigma2 = math.log1p((std / mean) ** 2)
        return rng.lognormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2), n)
    # gamma: shape k = mean^2 / std^2, scale theta = std^2 / mean.
    return rng.gamma((mean / std) ** 2, std**2 / mean, n)


def sample_time_steps(n: int, spec: Mapping, generator: np.random.Generator) -> torch.Tensor:
    """Draw ``n`` per-neuron time steps from ``spec`` with ``generator``, clipped, as a float32 tensor."""
    import torch

    validate_spec(spec)
    lo, hi = spec.get("clip_min", DEFAULT_CLIP[0]), spec.get("clip_max", DEFAULT_CLIP[1])
    dt = np.clip(_draw(n, spec, generator), lo, hi)
    return torch.from_numpy(dt).float()


def layer_specs(dt: Mapping | list, n_layers: int, where: str = "dt") -> list[Mapping]:
    """Expand a dt config into one spec per non-input layer: one spec for all, or a list with one per layer."""
    if isinstance(dt, Mapping):
        specs = [dt] * n_layers
    else:
        specs = list(dt)
        if len(specs) != n_layers:
            raise TimeStepSpecError(f"{where}: a per-layer list needs {n_layers} entries, got {len(specs)}")
    for i, spec in enumerate(specs):
        validate_spec(spec, where if isinstance(dt, Mapping) else f"{where}[{i}]")
    return specs


def resolve_dt(dt, sizes: Sequence[int], seed: int) -> list[torch.Tensor]:
    """Per-layer dt vectors from a scalar, a spec (or list of specs), or explicit tensors."""
    import torch

    n_layers = len(sizes) - 1
    if isinstance(dt, int | float):
        return [torch.full((n,), float(dt)) for n in sizes[1:]]
    if isinstance(dt, Mapping) or (isinstance(dt, Sequence) and all(isinstance(d, Mapping) for d in dt)):
        rng = numpy_rng(seed, "dt")
        return [sample_time_steps(n, spec, rng) for n, spec in zip(sizes[1:], layer_specs(dt, n_layers), strict=True)]
    tensors = [torch.as_tensor(d, dtype=torch.float32) for d in dt]
    if [t.shape[-1] for t in tensors] != list(sizes[1:]):
        raise ValueError(f"dt: expected vectors of sizes {list(sizes[1:])}, got {[tuple(t.shape) for t in tensors]}")
    return tensors
