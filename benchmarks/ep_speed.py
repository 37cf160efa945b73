"""EP training throughput on this machine: htsep's engine vs a naive EP that rebuilds Phi and calls autograd.

    python benchmarks/ep_speed.py [--threads 1] [--batches 30] [--runs 1 10 50] [--deep 784-256-256-10 ...]
                                  [--device cpu] [--rounds 3]

The engine is timed as training runs it (train_epoch: EP estimate, bookkeeping and SGD step; on CUDA the
estimate is a replayed CUDA graph). Prints samples/s, seconds per 10,000 training samples, the FLOPs EP needs
per sample and the achieved GFLOP/s, next to the machine's own fp32 matmul GFLOP/s measured in the same run;
then where one epoch's time goes (input drive, relaxation phases, gradient products, SGD step, evaluation and
its probe diagnostics, as shares of a 60k-sample epoch with its 10k-sample evaluation), and the projected wall
time of the full grid (3 datasets x 5 variants x 10 seeds x 20 epochs, training plus the per-epoch evaluation as
train.evaluate does it) with runs stacked R at a time. One line per deeper network (``--deep``, by its sizes) gives
the engine's samples/s at R=1, its share of the matmul peak and its speed-up over naive EP and over the PyTorch ops.
The fused kernel's instruction set follows HTSEP_MARCH (e.g. ``HTSEP_MARCH=x86-64-v3`` measures the AVX2 build on
an AVX-512 machine); to time a whole AVX2 machine there, restrict PyTorch's and MKL's kernels too:

    HTSEP_MARCH=x86-64-v3 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 python benchmarks/ep_speed.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from functools import partial

import torch

from htsep.ep import fused
from htsep.ep.dynamics import dead_units, relaxation_diagnostics
from htsep.ep.model import EPNetwork, energy, ep_parameter_gradients, one_hot
from htsep.training.epochs import batch_estimator, evaluate, train_epoch
from htsep.training.runs import make_optimizer, subnormals_flushed

SIZES, T1, T2, BATCH, BETA = [784, 256, 10], 60, 12, 64, 0.1
HTS = {"distribution": "normal", "mean": 0.3, "std": 0.05, "clip_min": 0.2, "clip_max": 0.4}


def ep_flops_per_sample(sizes, free_steps, nudged_steps, symmetric=True) -> int:
    """Multiply-adds x 2 of the matrix products one EP training sample needs (elementwise work excluded)."""
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    steps = free_steps + (2 if symmetric else 1) * nudged_steps
    drive = 2 * sizes[0] * sizes[1]  # W_1 x, once per sample for all phases
    per_step = sum(2 * 2 * n_in * n_out for n_in, n_out in pairs[1:])  # W_l s_{l-1} and W_l^T s_l, l >= 2
    update = 2 * sizes[0] * sizes[1] + sum(2 * 2 * n_in * n_out for n_in, n_out in pairs[1:])
    return drive + steps * per_step + update


def naive_ep_step(net: EPNetwork, x, y, free_steps, nudged_steps, beta):
    """The reference codes' approach: every step rebuilds Phi(x, s) (model.energy) and differentiates it."""
    target = one_hot(y, net.sizes[-1], x.dtype)

    def relax(states, steps, b):
        for _ in range(steps):
            states = [s.detach().requires_grad_(True) for s in states]
            phi = energy(states, x, net.weights, net.biases, target, b).sum()
            grads = torch.autograd.grad(phi, states)
            states = [torch.lerp(s, net.sigma(g), d) for s, g, d in zip(states, grads, net.dt, strict=True)]
        return [s.detach() for s in states]

    free = relax(net.zero_states(x), free_steps, 0.0)
    plus, minus = relax(free, nudged_steps, beta), relax(free, nudged_steps, -beta)
    params = [p.detach().requires_grad_(True) for p in net.parameters]
    weights, biases = params[:len(net.weights)], params[len(net.weights):]
    delta = torch.autograd.grad((energy(plus, x, weights, biases) - energy(minus, x, weights, biases)).sum(), params)
    return [-g / (2 * beta * len(x)) for g in delta]


def eval_flops_per_sample(sizes, free_steps) -> int:
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    return 2 * sizes[0] * sizes[1] + free_steps * sum(2 * 2 * n_in * n_out for n_in, n_out in pairs[1:])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


ROUNDS = 3  # every rate is the best of this many timed rounds (--rounds): the least disturbed by other processes


def throughput(step, batches: int, samples_per_call: int, device) -> float:
    """Samples per second of ``step`` (``batches`` calls of ``samples_per_call`` samples), the best of ROUNDS."""
    step()  # warm-up
    best = 0.0
    for _ in range(ROUNDS):
        sync(device)
        start = time.perf_counter()
        for _ in range(batches):
            step()
        sync(device)
        best = max(best, batches * samples_per_call / (time.perf_counter() - start))
    return best


def matmul_gflops(device, n: int = 1024, repeats: int = 20) -> float:
    """The machine's fp32 matmul rate (n^3 products), timed like every other rate (best of the rounds)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n**3 * throughput(lambda: a @ b, repeats, 1, device) / 1e9


STARTUP = """
import time
start = time.perf_counter()
import htsep.training.runs
from htsep.ep import fused
imported = time.perf_counter()
fused._extension()
print(imported - start, time.perf_counter() - imported)
"""


def fresh_process_startup() -> tuple[float, float, float]:
    """(interpreter start, import htsep.training.runs, load the built kernel) in seconds, in a new process."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True, check=True).stdout.split()
    imports, kernel = map(float, out[-2:])
    return time.perf_counter() - start - imports - kernel, imports, kernel


def seconds_per_call(f, repeats: int, device) -> float:
    """Mean seconds per call over ``repeats`` calls, in the fastest round."""
    return 1 / throughput(f, repeats, 1, device)


def epoch_breakdown(training, x_data, y_data, x_test, y_test, device, n_train=60000, n_test=10000):
    """Seconds of one run's epoch (n_train training samples, then n_test evaluated) per part, from timing each
    part alone on this machine (called from Python); 'other' is the rest of train_epoch (indexing, bookkeeping),
    negative where the compiled epoch (fused.train_epoch) saves more per-call overhead than that rest costs."""
    net = EPNetwork.stack([EPNetwork(SIZES, HTS, seed=0, device=device)])
    optimizer = make_optimizer(net, training)
    xb, yb = x_data[None, :BATCH], y_data[None, :BATCH]
    target = one_hot(yb, SIZES[-1], xb.dtype)
    drives = net.drives(xb)
    free = net.relax(xb, T1)
    plus = net.relax(xb, T2, BETA, yb, init=free)
    est = net.ep_estimate(xb, yb, BETA, T1, T2)
    for param, grad in zip(net.parameters, est.grad_weights + est.grad_biases, strict=True):
        param.grad = grad
    per_batch = {
        "input drive W_1 x + b_1": lambda: net.drives(xb),
        "relaxation (T1, then 2 x T2 nudged)": lambda: net.relax_phases(
            drives, net.zero_states(xb), T1, branches=[(net.nudged(drives, b, target), T2, b) for b in (BETA, -BETA)]),
        "gradient products": lambda: ep_parameter_gradients(xb, plus, free, 2 * BETA),
        "SGD step": optimizer.step,
    }
    batches = n_train / BATCH
    parts = {name: batches * seconds_per_call(f, 50, device) for name, f in per_batch.items()}
    orders = torch.randperm(len(x_data), device=device)[None]
    epoch = partial(train_epoch, net, optimizer, batch_estimator(net, x_data, y_data, training), y_data, orders,
                    training, "breakdown")
    parts["other (indexing, bookkeeping)"] = n_train / len(x_data) * seconds_per_call(epoch, 2, device) - sum(
        parts.values())
    without_probe = dict(training, probe_size=0)
    evaluation = n_test / len(x_test) * seconds_per_call(
        partial(evaluate, net, x_test, y_test, without_probe), 2, device)
    probe = x_test[None, :training["probe_size"]]
    parts["evaluation (free phase)"] = evaluation
    parts[f"probe diagnostics ({probe.shape[1]} samples)"] = seconds_per_call(
        lambda: (relaxation_diagnostics(net, probe, T1, training["residual_tol"]),
                 dead_units(net, probe, y_test[:probe.shape[1]], training)), 2, device)
    return parts


def subnormal_sgd_step(training, device, dead_share: float = 0.15) -> tuple[float, float]:
    """Seconds per SGD step (subnormals flushed, not flushed) when ``dead_share`` of the hidden units have the
    subnormal momentum buffers a zero gradient leaves after about 800 steps: why training flushes subnormals."""
    net = EPNetwork(SIZES, HTS, seed=0, device=device)
    optimizer = make_optimizer(net, training)
    for p in net.parameters:
        p.grad = torch.zeros_like(p)  # dead units' gradient
    optimizer.step()  # creates the momentum buffers
    buffer = optimizer.state[net.weights[0]]["momentum_buffer"][:int(dead_share * SIZES[1])]  # their W_1 rows
    seconds = []
    try:
        for flush in (True, False):
            torch.set_flush_denormal(flush)
            buffer.fill_(1e-39)  # x 0.9 per step: still subnormal after the 60 steps timed (unless flushed)
            seconds.append(seconds_per_call(optimizer.step, 20, device))
    finally:
        torch.set_flush_denormal(True)
    return seconds[0], seconds[1]


@subnormals_flushed()  # as training runs
def main() -> None:
    global ROUNDS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 10, 50], help="stack sizes R to measure")
    parser.add_argument("--deep", nargs="*", default=["784-256-256-10", "784-256-256-256-10"],
                        help="deeper networks to time at R=1, by their sizes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--eval-batch-size", type=int, default=2000, help="training.eval_batch_size")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="timed rounds per rate; the best counts")
    parser.add_argument("--jobs", type=int, default=os.cpu_count(), help="parallel train jobs (default: one per core)")
    args = parser.parse_args()
    ROUNDS = args.rounds
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    flops, eval_flops = ep_flops_per_sample(SIZES, T1, T2), eval_flops_per_sample(SIZES, T1)
    peak = matmul_gflops(device)
    print(f"network {'-'.join(map(str, SIZES))}, T1={T1}, T2={T2} (symmetric), batch {BATCH}, "
          f"{args.threads} thread(s), {device}, torch {torch.__version__}, best of {ROUNDS} rounds per rate")
    print(f"EP FLOPs per training sample: {flops / 1e6:.2f} MFLOP; per evaluated sample: {eval_flops / 1e6:.2f}")
    print(f"machine fp32 matmul (1024^3): {peak:.1f} GFLOP/s; CPU: {cpu_model()}")
    print(f"fused relaxation kernel: {fused.kernel_id() or 'unavailable'}; PyTorch CPU kernels: "
          f"{torch.backends.cpu.get_cpu_capability()}; MKL_ENABLE_INSTRUCTIONS="
          f"{os.environ.get('MKL_ENABLE_INSTRUCTIONS', '(unset: the best this CPU has)')}")
    interpreter, imports, kernel = fresh_process_startup()
    print(f"fresh process: interpreter {interpreter:.2f} s, import htsep.training.runs {imports:.2f} s, "
          f"load the built kernel {kernel:.3f} s")

    def report(name, rate):
        print(f"{name:>24}: {rate:9.0f} samples/s  {1e4 / rate:7.3f} s per 10k samples  "
              f"{rate * flops / 1e9:7.2f} GFLOP/s ({100 * rate * flops / 1e9 / peak:5.1f}% of matmul peak)")

    net = EPNetwork(SIZES, HTS, seed=0, device=device)
    x = torch.rand(BATCH, SIZES[0], device=device)
    y = torch.randint(0, SIZES[-1], (BATCH,), device=device)
    naive = None
    if not args.skip_naive:
        naive = throughput(lambda: naive_ep_step(net, x, y, T1, T2, BETA), max(3, args.batches // 5), BATCH, device)
        report("naive autograd EP", naive)
    training = {"beta": BETA, "free_steps": T1, "nudged_steps": T2, "symmetric": True, "batch_size": BATCH,
                "lr": [0.4, 0.02], "momentum": 0.9, "weight_decay": 0.0, "eval_batch_size": args.eval_batch_size,
                "probe_size": 200, "residual_tol": 1e-4}  # probe: 1/10 of the test set, as 1,000 of 10,000
    x_data = torch.rand(args.batches * BATCH, SIZES[0], device=device)
    y_data = torch.randint(0, SIZES[-1], (len(x_data),), device=device)
    x_test, y_test = torch.rand(2000, SIZES[0], device=device), torch.randint(0, SIZES[-1], (2000,), device=device)
    def measure(runs, sizes=SIZES):
        stacked = EPNetwork.stack([EPNetwork(sizes, HTS, seed=s, device=device) for s in range(runs)])
        layers = len(sizes) - 1  # one learning rate per layer: the paper network's first and last, 0.1 between
        optimizer = make_optimizer(stacked, dict(training, lr=[0.4, *[0.1] * (layers - 2), 0.02][-layers:]))
        orders = torch.stack([torch.randperm(len(x_data), device=device) for _ in range(runs)])
        estimate = batch_estimator(stacked, x_data, y_data, training)  # what training uses (a CUDA graph on GPU)
        epoch = partial(train_epoch, stacked, optimizer, estimate, y_data, orders, training, "benchmark")
        train_rate = throughput(epoch, 1, runs * len(x_data), device)
        eval_rate = throughput(partial(evaluate, stacked, x_test, y_test, training), 2, runs * len(x_test), device)
        return train_rate, eval_rate, fused.engine(stacked)

    def show(name, train_rate, eval_rate, engine):
        report(name, train_rate)
        print(f"{'':>24}  relaxation: {engine}; evaluation: {eval_rate:.0f} test samples/s (with probe diagnostics)")

    rates = {}
    for runs in args.runs:
        *rates[runs], engine = measure(runs)
        show(f"htsep engine, R={runs}", *rates[runs], engine)
    if fused.engine(net) == "fused-cpu":  # the same engine with PyTorch ops for the relaxation, for comparison
        fused.enabled = False
        show("htsep, PyTorch ops, R=1", *measure(1))
        fused.enabled = True
    deep_rates = {}
    for label in args.deep:
        sizes = [int(n) for n in label.split("-")]
        deep_flops = ep_flops_per_sample(sizes, T1, T2)
        train_rate, eval_rate, engine = measure(1, sizes)
        fused.enabled = False
        ops_rate = measure(1, sizes)[0]
        fused.enabled = True
        deep_net = EPNetwork(sizes, HTS, seed=0, device=device)
        deep_naive = None if args.skip_naive else throughput(
            lambda n=deep_net: naive_ep_step(n, x, y, T1, T2, BETA), max(3, args.batches // 5), BATCH, device)
        versus = "" if deep_naive is None else f", {train_rate / deep_naive:.1f}x naive"
        deep_rates[label] = train_rate, eval_rate
        print(f"{label:>24}: {train_rate:9.0f} samples/s  {deep_flops / 1e6:.2f} MFLOP/sample  "
              f"{100 * train_rate * deep_flops / 1e9 / peak:5.1f}% of matmul peak; relaxation: {engine}"
              f"{versus}, {train_rate / ops_rate:.2f}x PyTorch ops")
    if device.type == "cpu":
        parts = epoch_breakdown(dict(training, probe_size=1000), x_data, y_data, x_test, y_test, device)
        total = sum(parts.values())
        print(f"one run's epoch (60k training samples + 10k evaluated, R=1): {total:.2f} s")
        for name, seconds in parts.items():
            print(f"{name:>36}: {seconds:6.3f} s  {100 * seconds / total:5.1f}%")
        flushed, unflushed = subnormal_sgd_step(training, device)
        print(f"SGD step with 15% of the hidden units' momentum subnormal (dead units): {1e6 * flushed:.0f} us "
              f"with subnormals flushed (as training runs), {1e6 * unflushed:.0f} us without")
    if naive:
        print(f"speed-up of the per-run engine (R=1) over naive autograd EP: {rates[min(rates)][0] / naive:.1f}x")
    grids = {"official splits (60k/10k x 3)": [(60000, 10000)] * 3,
             "offline (MNIST, FMNIST 60k/10k; KMNIST holdout 8k/2k)": [(60000, 10000)] * 2 + [(8000, 2000)]}
    for runs, (train_rate, eval_rate) in rates.items():
        for label, sets in grids.items():
            seconds = sum(50 * 20 * (n_train / train_rate + n_test / eval_rate) for n_train, n_test in sets)
            parallel = "" if device.type == "cuda" else (
                f", {seconds / 60 / args.jobs:.1f} min as {args.jobs} parallel jobs of {args.threads} thread(s)")
            print(f"projected full grid (150 runs x 20 epochs), R={runs}, {label}: {seconds / 60:.1f} min in one "
                  f"process{parallel}")
    if 1 in rates:  # the KMNIST cells: 3 arms per protocol and standard EP's runs, shared, on the holdout
        confirmatory = (2 * 3 + 1) * 50 * 20 * (8000 / rates[1][0] + 2000 / rates[1][1])
        print(f"projected confirmatory KMNIST cells (350 runs x 20 epochs, holdout 8k/2k), R=1: "
              f"{confirmatory / 3600 / args.jobs:.1f} h as {args.jobs} parallel jobs")
    for label, (train_rate, eval_rate) in deep_rates.items():  # the depth study: 3 arms x 10 seeds x 2 T1, MNIST
        seconds = 3 * 10 * 2 * 20 * (60000 / train_rate + 10000 / eval_rate)
        print(f"projected depth study {label} (3 arms x 10 seeds x 2 T1 x 20 epochs, MNIST, T1={T1}), R=1: "
              f"{seconds / 3600 / args.jobs:.1f} h as {args.jobs} parallel jobs")


if __name__ == "__main__":
    main()
