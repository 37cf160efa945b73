"""The fused CPU relaxation computes what the PyTorch ops compute, and is used exactly where it applies."""

import os
import shutil
import subprocess
import sys

import pytest
import torch

from htsep.ep import fused
from htsep.ep.model import EPNetwork

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
@pytest.mark.parametrize("sizes", [[784, 256, 10], [20, 37, 3], [50, 40, 30, 10], [20, 37, 9, 14, 3]],
                         ids=["paper", "odd-sizes", "two-hidden", "three-hidden-odd"])  # 37, 9: vector/row tails
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


@needs_kernel
@pytest.mark.parametrize("runs", [None, 3], ids=["one", "stacked"])
@pytest.mark.parametrize("sizes", [[30, 21, 5], [30, 21, 6, 5]], ids=["one-hidden", "two-hidden"])
def test_branches_of_one_call_are_bitwise_the_phases_relaxed_one_by_one(runs, sizes):
    """EP's free phase and both nudged phases in one kernel call: the same numbers as three calls."""
    net = EPNetwork.stack([EPNetwork(sizes, HTS, seed=s) for s in range(runs)]) if runs else \
        EPNetwork(sizes, HTS, seed=0)
    x = torch.rand(*((runs,) if runs else ()), 19, 30, generator=torch.Generator().manual_seed(3))
    target = torch.nn.functional.one_hot(torch.arange(19) % 5, 5).float().expand(*x.shape[:-1], 5)
    drives = net.drives(x)
    nudges = [(net.nudged(drives, b, target), n, b) for b, n in ((0.4, 6), (-0.4, 9))]
    together = net.relax_phases(drives, net.zero_states(x), 25, branches=nudges)
    free = net.relax_phases(drives, net.zero_states(x), 25)[0]
    one_by_one = [free, *(net.relax_phases(d, free, n, b)[0] for d, n, b in nudges)]
    assert len(together) == 3
    for a, b in zip(together, one_by_one, strict=True):
        assert all(torch.equal(s, t) for s, t in zip(a, b, strict=True))
    assert not torch.equal(together[1][-1], together[2][-1])  # the nudges differ
    with pytest.raises(ValueError, match="input drive"):
        net.relax_phases(drives, net.zero_states(x), 5, branches=[([d.clone() for d in drives], 3, 0.0)])


def test_pytorch_ops_run_where_the_kernel_does_not_apply():
    x = torch.rand(4, 6)
    shallow = EPNetwork([6, 3], HTS, seed=0)  # no hidden layer
    smooth = EPNetwork([6, 5, 3], HTS, activation="sigmoid", seed=0)
    wide = EPNetwork([6, 5, 17], HTS, seed=0)
    double = EPNetwork([6, 5, 3], HTS, seed=0, dtype=torch.float64)
    assert {fused.engine(n) for n in (shallow, smooth, wide, double)} == {"torch"}
    net = EPNetwork([6, 5, 3], HTS, seed=0)
    drives = net.drives(x)
    assert not fused.applies(net, drives, [s.requires_grad_() for s in net.zero_states(x)])  # autograd
    assert not fused.applies(net, [d.expand(2, -1, -1) for d in drives], net.zero_states(x.expand(2, -1, -1)))


def cpu_has(*flags: str) -> bool:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return all(f" {flag}" in text for flag in flags)


EP_GRADIENTS = """
import sys, torch
from htsep.ep import fused
from htsep.ep.model import EPNetwork
gen = torch.Generator().manual_seed(4)
x, y = torch.rand(37, 784, generator=gen), torch.randint(0, 10, (37,), generator=gen)
grads = []
for sizes in ([784, 256, 10], [784, 64, 33, 10]):  # one hidden layer and two (33: a row tail)
    gw, gb = EPNetwork(sizes, {hts!r}, seed=1).ep_gradients(x, y, 0.1, 60, 12)
    grads += [*gw, *gb]
print(fused.kernel_id())
torch.save(grads, sys.argv[1])
"""


@needs_kernel
@pytest.mark.skipif(not cpu_has("avx2", "fma"), reason="needs an AVX2 machine to run the x86-64-v3 build")
def test_avx2_build_gives_exactly_the_numbers_of_the_native_build(tmp_path):
    """One lane per sample, same operation order at every vector width: the instruction set changes no bit."""
    results = {}
    for march in ("native", "x86-64-v3"):
        env = {**os.environ, "HTSEP_MARCH": march}
        out = subprocess.run([sys.executable, "-c", EP_GRADIENTS.format(hts=HTS), str(tmp_path / march)], env=env,
                             capture_output=True, text=True, check=True).stdout
        results[march] = out.strip().splitlines()[-1], torch.load(tmp_path / march)
    assert "avx2, 8 lanes" in results["x86-64-v3"][0]
    assert results["native"][0] != results["x86-64-v3"][0] or not cpu_has("avx512f")
    assert all(torch.equal(a, b) for a, b in zip(results["native"][1], results["x86-64-v3"][1], strict=True))


@needs_kernel
def test_a_built_kernel_is_loaded_in_a_fresh_process_without_building(tmp_path):
    fused._extension()  # built (or already in the cache) here
    probe = ("import torch.utils.cpp_extension as ext\n"
             "def refuse(*a, **k): raise AssertionError('rebuilt')\n"
             "ext.load = refuse\n"
             "from htsep.ep import fused\n"
             "assert fused._extension() is not None\n"
             "print(fused.kernel_id())")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == fused.kernel_id()


def test_build_key_names_source_and_flags_not_the_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("HTSEP_MARCH", "native")
    key = fused.build_key()
    copy = tmp_path / "elsewhere" / fused.SOURCE.name
    copy.parent.mkdir()
    copy.write_bytes(fused.SOURCE.read_bytes())
    monkeypatch.setattr(fused, "SOURCE", copy)
    assert fused.build_key() == key  # a second checkout of the same source shares the build
    monkeypatch.setenv("HTSEP_MARCH", "x86-64-v3")
    avx2 = fused.build_key()
    copy.write_bytes(copy.read_bytes() + b"\n// edited\n")
    assert len({key, avx2, fused.build_key()}) == 3


@needs_kernel
@pytest.mark.parametrize("sizes", [[30, 21, 5], [30, 21, 6, 5]], ids=["one-hidden", "two-hidden"])
@pytest.mark.parametrize("symmetric", [True, False], ids=["symmetric", "one-sided"])
@pytest.mark.parametrize("momentum", [0.9, 0.0], ids=["momentum", "plain-sgd"])
def test_a_compiled_epoch_is_bitwise_the_python_epoch(sizes, symmetric, momentum, monkeypatch):
    """fused.train_epoch (batches in C++) against train_epoch's Python loop over the same fused relaxation: the same
    weights, momentum buffers and epoch metrics to the bit, over two epochs with a short last batch."""
    from htsep.training.epochs import batch_estimator, train_epoch
    from htsep.training.runs import make_optimizer

    training = {"beta": 0.3, "free_steps": 9, "nudged_steps": 4, "symmetric": symmetric, "batch_size": 8,
                "lr": [0.2, 0.05, 0.02][-(len(sizes) - 1):], "momentum": momentum, "weight_decay": 1e-4}
    gen = torch.Generator().manual_seed(5)
    x, y = torch.rand(50, sizes[0], generator=gen), torch.randint(0, sizes[-1], (50,), generator=gen)
    orders = torch.stack([torch.randperm(50, generator=gen) for _ in range(2)])
    compiled_epochs, can_train = [], fused.trains

    def two_epochs(compiled: bool):
        trains = can_train if compiled else (lambda net, optimizer: False)
        monkeypatch.setattr(fused, "trains", lambda net, optimizer: trains(net, optimizer)
                            and not compiled_epochs.append(1))
        net = EPNetwork.stack([EPNetwork(sizes, HTS, seed=s) for s in range(2)])
        optimizer = make_optimizer(net, training)
        estimate = batch_estimator(net, x, y, training)
        stats = [train_epoch(net, optimizer, estimate, y, orders, training, "test") for _ in range(2)]
        buffers = [optimizer.state[p]["momentum_buffer"] for p in net.parameters] if momentum else []
        return [*net.parameters, *buffers, *(s[k] for s in stats for k in sorted(s))]

    python = two_epochs(compiled=False)
    compiled = two_epochs(compiled=True)
    assert len(compiled_epochs) == 2  # both epochs went to C++ (with momentum, the first after a Python step)
    assert all(torch.equal(a, b) for a, b in zip(python, compiled, strict=True))
    assert not torch.equal(python[0], EPNetwork.stack([EPNetwork(sizes, HTS, seed=s) for s in range(2)]).weights[0])


@needs_kernel
def test_the_compiled_epoch_takes_only_the_optimizer_it_reproduces():
    from htsep.training.runs import make_optimizer

    net = EPNetwork.stack([EPNetwork([30, 21, 5], HTS, seed=0)])
    training = {"lr": [0.2, 0.05], "momentum": 0.0, "weight_decay": 0.0}
    assert fused.trains(net, make_optimizer(net, training))
    assert not fused.trains(net, torch.optim.SGD(net.parameters, lr=0.1))  # one group, and not the fused kernel
    unfused = torch.optim.SGD([{"params": [w, b]} for w, b in zip(net.weights, net.biases, strict=True)], lr=0.1)
    assert not fused.trains(net, unfused)
    swapped = torch.optim.SGD([{"params": [b, w]} for w, b in zip(net.weights, net.biases, strict=True)], lr=0.1,
                              fused=True)
    assert not fused.trains(net, swapped)
    mixed = make_optimizer(net, training)
    mixed.param_groups[1]["weight_decay"] = 1e-3
    assert not fused.trains(net, mixed)
    assert not fused.trains(net, make_optimizer(net, dict(training, momentum=0.9)))  # no momentum buffers yet
