"""The CPU fast path of EP: one compiled loop instead of ~6 PyTorch ops per relaxation step, and a whole training
epoch without returning to Python.

For layered networks with hard sigmoid units, at most 16 outputs, float32 on the CPU and no autograd (the paper's
network and deeper ones) EPNetwork.relax_phases hands its phases to ``csrc/ep_cpu.cpp``, which relaxes blocks of
samples, one per vector lane, with their states in cache. It computes what relaxation_step computes (the tests
compare them); only the order of float sums differs, and each sample's arithmetic is the same whatever the vector
width, so AVX2 and AVX-512 builds give identical numbers. ``train_epoch`` runs training's batches (gather, input
drive, phases, gradient products, SGD step) in C++ with the ATen calls training.epochs makes in Python, so with the
same numbers.
Without a C++ compiler, or with HTSEP_FUSED=0, the PyTorch ops run instead. ``engine(net)`` names what runs and
``kernel_id()`` which build (training records both in summary.json).

Builds: the extension is compiled once per (source, compiler flags, torch version, CPU kind) into its own folder
of the kernel cache, ``$HTSEP_KERNEL_CACHE`` (default ``~/.cache/htsep/kernels``), and later processes load the
built module directly. ``HTSEP_MARCH`` sets the target (default ``native``; ``x86-64-v3`` builds the AVX2 kernel,
``x86-64-v4`` the AVX-512 one, e.g. to measure the AVX2 build on an AVX-512 machine).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import platform
import shutil
from functools import cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "csrc" / "ep_cpu.cpp"
MAX_OUTPUTS = 16
enabled = os.environ.get("HTSEP_FUSED", "1") != "0"


def _cpu_tag() -> str:
    """Short fingerprint of this CPU's instruction sets: a -march=native build is only reused on its own kind."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        flags = platform.processor() or platform.machine()
    return hashlib.sha1(flags.encode()).hexdigest()[:8]


def compiler_flags() -> list[str]:
    march = os.environ.get("HTSEP_MARCH", "native")
    return ["-O3", f"-march={march}", "-ffp-contract=fast"]


def kernel_cache() -> Path:
    return Path(os.environ.get("HTSEP_KERNEL_CACHE", Path.home() / ".cache" / "htsep" / "kernels"))


def build_key() -> str:
    """What a build depends on: the kernel source, the flags, torch, and the CPU kind where -march=native."""
    flags = compiler_flags()
    parts = [SOURCE.read_bytes(), " ".join(flags).encode(), torch.__version__.encode()]
    if "-march=native" in flags:
        parts.append(_cpu_tag().encode())
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


def _import(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def _extension():
    """The compiled module (built on first use in its own cache folder), or None where it cannot be built."""
    name = f"htsep_relax_{build_key()}"
    folder = kernel_cache() / name
    built = folder / f"{name}.so"
    if built.exists():
        try:
            return _import(name, built)
        except ImportError:  # e.g. another process is still linking it: build (under torch's lock) below
            pass
    try:
        from torch.utils.cpp_extension import load

        folder.mkdir(parents=True, exist_ok=True)
        source = folder / SOURCE.name  # compiled from a copy: the build command is the same for every checkout
        if not source.exists():
            shutil.copyfile(SOURCE, source)
        return load(name, [str(source)], extra_cflags=compiler_flags(), build_directory=str(folder))
    except Exception as err:  # no compiler, no headers: the PyTorch ops give the same results
        log.warning("fused CPU relaxation unavailable (%s); using PyTorch ops", err)
        return None


def kernel_id() -> str | None:
    """Which build relaxes on this machine, e.g. 'ep_cpu 3f2a... (avx512, 16 lanes; -march=native)'."""
    ext = _extension() if enabled else None
    if ext is None:
        return None
    return f"ep_cpu {build_key()} ({ext.target()}; {' '.join(compiler_flags()[1:2])})"


def engine(net) -> str:
    """What relaxes ``net``: 'fused-cpu' (hidden layers, hard sigmoid, float32 on the CPU) or 'torch'."""
    w = net.weights[-1]
    fits = (len(net.sizes) >= 3 and net.activation == "hard_sigmoid" and net.sizes[-1] <= MAX_OUTPUTS
            and w.device.type == "cpu" and w.dtype == torch.float32)
    return "fused-cpu" if enabled and fits and _extension() is not None else "torch"


def applies(net, drives, states) -> bool:
    """Does the fused kernel relax these states? (Not under autograd, and not for extra leading axes.)"""
    tensors = [*drives, *states, *net.weights[1:], *net.dt]
    return (engine(net) == "fused-cpu" and states[0].dim() == net.weights[0].dim()
            and all(t.device.type == "cpu" and t.dtype == torch.float32 and not t.requires_grad for t in tensors))


SGD_SETTINGS = ("momentum", "weight_decay", "dampening", "nesterov", "maximize")


def trains(net, optimizer) -> bool:
    """Can ``train_epoch`` take over this stack's training? (The fused engine, parameters without autograd, and a
    fused SGD (htsep.training.sgd.FusedSGD, or torch.optim.SGD with fused=True) with one group [W_l, b_l] per layer,
    all groups alike but their learning rates; with momentum, once its buffers exist: the first step, which creates
    them, runs in Python.)"""
    groups = optimizer.param_groups
    layers = [[w, b] for w, b in zip(net.weights, net.biases, strict=True)]
    return (engine(net) == "fused-cpu" and all(k in g for g in groups for k in SGD_SETTINGS)
            and not any(p.requires_grad for p in net.parameters)
            and len(groups) == len(layers)
            and all(len(g["params"]) == 2 and all(p is q for p, q in zip(g["params"], layer, strict=True))
                    for g, layer in zip(groups, layers, strict=True))
            and all(g["fused"] and all(g[k] == groups[0][k] for k in SGD_SETTINGS) for g in groups)
            and (groups[0]["momentum"] == 0 or all("momentum_buffer" in optimizer.state[p] for p in net.parameters)))


def train_epoch(net, optimizer, x, targets, orders, training: dict, outputs, first: int) -> None:
    """Train ``net`` on the batches of ``orders`` [R, N] from index ``first`` on (see ``trains``): inputs ``x`` [N,
    n_0], one-hot ``targets`` [N, O]; each batch's free-phase outputs go to ``outputs`` [R, N, O]."""
    group = optimizer.param_groups[0]
    momentum = [optimizer.state[p]["momentum_buffer"] for p in net.parameters] if group["momentum"] else []
    layers = len(momentum) // 2
    _extension().train_epoch(x, targets, orders, net.weights, net.biases, net.dt, momentum[:layers],
                             momentum[layers:], [g["lr"] for g in optimizer.param_groups], group["momentum"],
                             group["weight_decay"], group["dampening"], group["nesterov"], group["maximize"],
                             training["beta"], training["free_steps"], training["nudged_steps"],
                             training["symmetric"], training["batch_size"], first, outputs)


def relax(net, drives, init, steps: int, beta: float, branches=()):
    """``steps`` relaxation steps of [s_1, ..., s_L] from ``init`` (left untouched), then each branch (drives_k,
    steps_k, beta_k) relaxed on from that result, all in one kernel call; returns [states, *branch states]. A
    branch shares the first phase's drives and differs in its output drive (see EPNetwork.relax_phases)."""
    if any(b_drives[0] is not drives[0] for b_drives, _, _ in branches):
        raise ValueError("fused.relax: branches must share the first phase's input drive")
    stacked = net.weights[0].dim() == 3
    lead = (lambda t: t) if stacked else (lambda t: t.unsqueeze(0))  # the kernel wants a leading run axis
    *s_h, s_o = (lead(s).clone(memory_format=torch.contiguous_format) for s in init)
    runs, hidden = s_o.shape[0], len(s_h)
    none = torch.empty(0)
    d, c = lead(drives[0]).contiguous(), lead(drives[-1]).contiguous()
    w_h = [none, *(lead(w).contiguous() for w in net.weights[1:-1])]
    b_h = [none, *(lead(b).reshape(runs, -1).contiguous() for b in drives[1:-1])]  # b_l as rows [R, 1, n_l]
    *dt_h, dt_o = (lead(t).contiguous() for t in net.dt)
    outputs = [[torch.empty_like(s) for s in (*s_h, s_o)] for _ in branches]
    _extension().relax(s_h, s_o, d, c, w_h, b_h, lead(net.weights[-1]).contiguous(), dt_h, dt_o, steps, beta,
                       [lead(b_drives[-1]).expand_as(s_o).contiguous() for b_drives, _, _ in branches],
                       [b_steps for _, b_steps, _ in branches], [b_beta for _, _, b_beta in branches],
                       [out[:hidden] for out in outputs], [out[-1] for out in outputs])
    phases = [[*s_h, s_o], *outputs]
    return [p if stacked else [s[0] for s in p] for p in phases]
