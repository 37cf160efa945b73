"""Independent random streams derived from one run seed.

Each concern (weight init, dt draw, batch order of each epoch) gets its own stream, so changing the dt spec
never changes the initial weights or the batch order, and a resumed run regenerates epoch e's order exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported where a generator is made: the config checks that seed numpy streams need no torch
    import torch

STREAMS = {"init": 0, "dt": 1, "batches": 2}


def stream_seed(seed: int, stream: str, *extra: int) -> int:
    """A 63-bit seed for ``stream`` (plus optional indices such as the epoch) derived from ``seed``."""
    sequence = np.random.SeedSequence([int(seed), STREAMS[stream], *map(int, extra)])
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def numpy_rng(seed: int, stream: str, *extra: int) -> np.random.Generator:
    return np.random.default_rng(stream_seed(seed, stream, *extra))


def torch_rng(seed: int, stream: str, *extra: int) -> torch.Generator:
    import torch

    return torch.Generator().manual_seed(stream_seed(seed, stream, *extra))
