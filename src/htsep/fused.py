"""The CPU fast path of the relaxation: one compiled loop instead of ~6 PyTorch ops per step.

For the paper's networks (one hidden layer, hard sigmoid, float32 on the CPU, no autograd) EPNetwork._relax hands
its phases to ``csrc/relax_one_hidden.cpp``, which relaxes each sample with its states in L1 cache and forms
both products with W_2 in one pass per step. It computes what relaxation_step computes (the tests compare them);
only the order of float sums differs. The extension is compiled on first use (torch.utils.cpp_extension, cached);
without a C++ compiler, or with HTSEP_FUSED=0, the PyTorch ops run instead. ``engine(net)`` names what runs
(training records it in summary.json).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
from functools import cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "csrc" / "relax_one_hidden.cpp"
MAX_OUTPUTS = 16
enabled = os.environ.get("HTSEP_FUSED", "1") != "0"


def _cpu_tag() -> str:
    """Short fingerprint of this CPU's instruction sets: a -march=native build is only reused on its own kind."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        flags = platform.processor() or platform.machine()
    return hashlib.sha1(flags.encode()).hexdigest()[:8]


@cache
def _extension():
    """The compiled module, or None where it cannot be built."""
    try:
        from torch.utils.cpp_extension import load

        return load(f"htsep_relax_one_hidden_{_cpu_tag()}", [str(SOURCE)],
                    extra_cflags=["-O3", "-march=native", "-fopenmp-simd"])
    except Exception as err:  # no compiler, no headers: the PyTorch ops give the same results
        log.warning("fused CPU relaxation unavailable (%s); using PyTorch ops", err)
        return None


def engine(net) -> str:
    """What relaxes ``net``: 'fused-cpu' (one hidden layer, hard sigmoid, float32 on the CPU) or 'torch'."""
    w = net.weights[-1]
    fits = (len(net.sizes) == 3 and net.activation == "hard_sigmoid" and net.sizes[-1] <= MAX_OUTPUTS
            and w.device.type == "cpu" and w.dtype == torch.float32)
    return "fused-cpu" if enabled and fits and _extension() is not None else "torch"


def applies(net, drives, states) -> bool:
    """Does the fused kernel relax these states? (Not under autograd, and not for extra leading axes.)"""
    tensors = [*drives, *states, *net.weights[1:], *net.dt]
    return (engine(net) == "fused-cpu" and states[0].dim() == net.weights[0].dim()
            and all(t.device.type == "cpu" and t.dtype == torch.float32 and not t.requires_grad for t in tensors))


def relax(net, drives, init, steps: int, beta: float):
    """``steps`` relaxation steps of [s_1, s_2] from ``init`` (left untouched); see relaxation_step."""
    stacked = net.weights[0].dim() == 3
    lead = (lambda t: t) if stacked else (lambda t: t.unsqueeze(0))  # the kernel wants a leading run axis
    s_h, s_o = (lead(s).clone(memory_format=torch.contiguous_format) for s in init)
    d, c = (lead(t).contiguous() for t in drives)
    w, dt_h, dt_o = (lead(t).contiguous() for t in (net.weights[1], *net.dt))
    _extension().relax(s_h, s_o, d, c, w, dt_h, dt_o, steps, beta)
    return [s_h, s_o] if stacked else [s_h[0], s_o[0]]
