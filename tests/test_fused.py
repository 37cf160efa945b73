"""The fused CPU relaxation computes what the PyTorch ops compute, and is used exactly where it applies."""

import shutil

import pytest
import torch

from htsep import fused
from htsep.model import EPNetwork

HTS = {"distribution": "normal", "mean": 0.3, "std": 0.05, "clip_min": 0.2, "clip_max": 0.4}

needs_kernel = pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                                  reason="no C++ compiler: the PyTorch ops run instead")


@pytest.fixture()
def pytorch_ops(monkeypatch):
    """Call ``pytorch_ops(f)`` to run f with the fused kernel switched off."""
    def run(f):
        monkeypatch.setattr(fused, "enabled", False)
        try:
            return f()
        finally:
            monkeypatch.setattr(fused, "enabled", True)
    return run


@needs_kernel
def test_kernel_is_built_where_a_compiler_exists():
    net = EPNetwork([784, 256, 10], HTS, seed=0)
    assert fused.engine(net) == "fused-cpu"


@needs_kernel
@pytest.mark.parametrize("sizes", [[784, 256, 10], [20, 37, 3]], ids=["paper", "odd-sizes"])  # 37: a vector tail
@pytest.mark.parametrize("runs", [None, 3], ids=["one", "stacked"])
@pytest.mark.parametrize("dt", [0.3, HTS], ids=["uniform", "heterogeneous"])
def test_fused_ep_estimate_equals_pytorch_ops(sizes, runs, dt, pytorch_ops):
    nets = [EPNetwork(sizes, dt, seed=s) for s in range(runs or 1)]
    net = EPNetwork.stack(nets) if runs else nets[0]
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(*((runs,) if runs else ()), 33, sizes[0], generator=gen)
    y = torch.randint(0, sizes[-1], x.shape[:-1], generator=gen)
    assert fused.engine(net) == "fused-cpu"
    fast = net.ep_estimate(x, y, 0.2, 40, 10)
    slow = pytorch_ops(lambda: net.ep_estimate(x, y, 0.2, 40, 10))
    for a, b in zip(fast.grad_weights + fast.grad_biases + fast.free_states,
                    slow.grad_weights + slow.grad_biases + slow.free_states, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert fast.free_states[-1].std() > 0.05  # the states moved: not a trivial agreement at zero


@needs_kernel
def test_fused_relax_leaves_its_start_untouched_and_continues_like_the_ops(pytorch_ops):
    net, x = EPNetwork([50, 40, 4], HTS, seed=2), torch.rand(8, 50)
    start = net.relax(x, 5)
    kept = [s.clone() for s in start]
    fast = net.relax(x, 7, beta=-0.3, target=torch.arange(8) % 4, init=start)
    assert all(torch.equal(a, b) for a, b in zip(start, kept, strict=True))
    slow = pytorch_ops(lambda: net.relax(x, 7, beta=-0.3, target=torch.arange(8) % 4, init=kept))
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_pytorch_ops_run_where_the_kernel_does_not_apply():
    x = torch.rand(4, 6)
    deep = EPNetwork([6, 5, 4, 3], HTS, seed=0)
    smooth = EPNetwork([6, 5, 3], HTS, activation="sigmoid", seed=0)
    wide = EPNetwork([6, 5, 17], HTS, seed=0)
    double = EPNetwork([6, 5, 3], HTS, seed=0, dtype=torch.float64)
    assert {fused.engine(n) for n in (deep, smooth, wide, double)} == {"torch"}
    net = EPNetwork([6, 5, 3], HTS, seed=0)
    drives = net.drives(x)
    assert not fused.applies(net, drives, [s.requires_grad_() for s in net.zero_states(x)])  # autograd
    assert not fused.applies(net, [d.expand(2, -1, -1) for d in drives], net.zero_states(x.expand(2, -1, -1)))
