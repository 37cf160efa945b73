"""One trained model under perturbation: its test accuracy and the share of test predictions that flip (against its
own clean prediction) when

- ``input_noise``: Gaussian noise of s.d. ``level`` is added to the pixels (in [0, 1]), which are clipped to [0, 1]
  and then normalised as in training;
- ``weight_noise``: every weight matrix is multiplied elementwise by ``1 + level * eps``, eps ~ N(0, 1) (biases kept);
- ``free_steps``: the free phase is cut short to ``level`` steps (the clean condition is the training T1);
- ``dt_swap``: dt is changed after training: a heterogeneous network relaxes with a fresh draw from its own
  distribution (``new heterogeneous draw``) and with a uniform dt at its mean; a uniform one with a draw of the
  heterogeneous variant named by robustness.dt_swap.heterogeneous scaled to its own dt (the same coefficient of
  variation; also ``new heterogeneous draw``, so that the two kinds of network are compared under it; around dt = 1
  such a draw has steps above 1, which overshoot).

The noise draws come from ``noise_seed`` alone (dt draws from it and the run's seed): every model of a dataset (every
variant, every seed) meets the same noisy images and the same weight-noise pattern, and the levels of one draw scale
one eps (common random numbers), so models are compared paired and the dose-response is smooth.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...config import dataset_label
from ...data.splits import load_split, normalised
from ...ep import fused
from ...ep.model import EPNetwork
from ...ep.timesteps import layer_specs, sample_time_steps
from ...files import read_table, read_torch, write_table
from ...fingerprint import code_fingerprint
from ...records import RECORD_COLUMNS, config_json
from ...run_tables import RUN_KEYS

log = logging.getLogger(__name__)

PERTURBATION_STREAM = 100  # SeedSequence([noise_seed, 100, kind, ...]): apart from htsep.seeding's run streams
KIND = {"input_noise": 0, "weight_noise": 1, "dt_swap": 2}
CLEAN = "clean"
NEW_DRAW = "new heterogeneous draw"


def _generator(noise_seed: int, kind: str, *extra: int) -> torch.Generator:
    sequence = np.random.SeedSequence([int(noise_seed), PERTURBATION_STREAM, KIND[kind], *map(int, extra)])
    return torch.Generator().manual_seed(int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)))


def _dt_rng(noise_seed: int, seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(noise_seed), PERTURBATION_STREAM, KIND["dt_swap"],
                                                         int(seed)]))


def draw_dt(spec, sizes, rng: np.random.Generator) -> list[torch.Tensor]:
    """One dt vector per non-input layer drawn from ``spec`` (one spec or one per layer) with ``rng``."""
    return [sample_time_steps(n, s, rng) for n, s in zip(sizes[1:], layer_specs(spec, len(sizes) - 1), strict=True)]


def is_uniform(dt) -> bool:
    values = torch.cat([d.flatten() for d in dt])
    return bool((values == values[0]).all())


@torch.no_grad()
def predictions(net: EPNetwork, x: torch.Tensor, steps: int, chunk: int) -> torch.Tensor:
    """The class each test sample is predicted after ``steps`` free steps, ``chunk`` samples at a time."""
    return torch.cat([net.predict(x[i:i + chunk], steps) for i in range(0, len(x), chunk)])


def _with(net: EPNetwork, weights=None, dt=None) -> EPNetwork:
    other = EPNetwork.from_state_dict(net.state_dict())
    other.weights = list(weights) if weights is not None else list(net.weights)
    other.dt = list(dt) if dt is not None else list(net.dt)
    return other


def conditions(net: EPNetwork, run: Mapping, pixels: torch.Tensor, spec: Mapping
               ) -> Iterator[tuple[str, float, str, int, EPNetwork, torch.Tensor, int]]:
    """(perturbation, level, condition, draw, network, inputs, free steps) of every perturbed evaluation."""
    normalize, trained_t1 = run["dataset"].get("normalize"), run["training"]["free_steps"]
    clean_x = normalised(pixels.clone(), normalize)
    for draw in range(spec["draws"]):
        eps = torch.randn(pixels.shape, generator=_generator(spec["noise_seed"], "input_noise", draw))
        for level in spec["input_noise"]:
            x = normalised((pixels + level * eps).clamp_(0.0, 1.0), normalize)
            yield "input_noise", float(level), f"sigma {level:g}", draw, net, x, trained_t1
    for draw in range(spec["draws"]):
        gen = _generator(spec["noise_seed"], "weight_noise", draw)
        eps = [torch.randn(w.shape, generator=gen) for w in net.weights]
        for level in spec["weight_noise"]:
            noisy = [w * (1 + level * e) for w, e in zip(net.weights, eps, strict=True)]
            yield "weight_noise", float(level), f"scale {level:g}", draw, _with(net, weights=noisy), clean_x, trained_t1
    for steps in spec["free_steps"]:
        if steps != trained_t1:
            yield "free_steps", float(steps), f"T1 = {steps}", 0, net, clean_x, steps
    rng = _dt_rng(spec["noise_seed"], run["seed"])
    if is_uniform(net.dt):
        own = float(net.dt[0].flatten()[0])
        hts = spec["heterogeneous_dt"]
        scaled = [d * (own / float(hts["mean"])) for d in draw_dt(hts, net.sizes, rng)]
        yield "dt_swap", math.nan, NEW_DRAW, 0, _with(net, dt=scaled), clean_x, trained_t1
    else:
        fresh = draw_dt(run["variant"]["dt"], net.sizes, rng)
        yield "dt_swap", math.nan, NEW_DRAW, 0, _with(net, dt=fresh), clean_x, trained_t1
        mean = float(torch.cat(net.dt).mean())
        uniform = [torch.full_like(d, mean) for d in net.dt]
        yield "dt_swap", math.nan, "uniform at its mean", 0, _with(net, dt=uniform), clean_x, trained_t1


def evaluate_model(model: str | Path, test: str | Path, spec: Mapping, outputs: Mapping[str, str]) -> None:
    """Evaluate the trained ``model`` on the ``test`` split under every perturbation of ``spec`` (the robustness
    setting, htsep.experiments.robustness.plan.setting); writes one row per model (``outputs['runs']``: its record
    columns and clean accuracy) and one per perturbation, level and draw (``outputs['conditions']``)."""
    torch.set_num_threads(1)  # the rule runs on one core
    ckpt = read_torch(model, "trained model", map_location="cpu")
    run = ckpt["run"]
    net = EPNetwork.from_state_dict(ckpt["network"])
    split = load_split(test)
    n = len(split["labels"]) if spec["test_subset"] is None else min(spec["test_subset"], len(split["labels"]))
    pixels = split["images"][:n].reshape(n, -1).to(torch.float32).div_(255)
    labels = split["labels"][:n].to(torch.int64)
    chunk = run["training"]["eval_batch_size"]
    trained_t1 = run["training"]["free_steps"]
    clean = predictions(net, normalised(pixels.clone(), run["dataset"].get("normalize")), trained_t1, chunk)
    key = {k: v for k, v in zip(RUN_KEYS, (run["protocol"], run["dataset"]["name"], run["variant"]["name"],
                                           run["seed"]), strict=True)}
    rows = [{**key, "perturbation": CLEAN, "level": float(trained_t1), "condition": CLEAN, "draw": 0,
             "accuracy": float((clean == labels).double().mean()), "flipped": 0.0}]
    for perturbation, level, condition, draw, perturbed, x, steps in conditions(net, run, pixels, spec):
        predicted = predictions(perturbed, x, steps, chunk)
        rows.append({**key, "perturbation": perturbation, "level": level, "condition": condition, "draw": draw,
                     "accuracy": float((predicted == labels).double().mean()),
                     "flipped": float((predicted != clean).double().mean())})
    recorded = ckpt["metrics"][-1].get("test_acc") if ckpt.get("metrics") else None
    label = dataset_label(run["dataset"]["name"], run["dataset"]["split"])
    runs = pd.DataFrame([{**key, "dataset_label": label, "config": config_json({**run, "robustness": dict(spec)}),
                          "code_fingerprint": code_fingerprint("experiments.robustness.evaluate"),
                          "relaxation_kernel": fused.kernel_id() if fused.engine(net) == "fused-cpu" else "torch",
                          "n_test": n, "clean_accuracy": rows[0]["accuracy"],
                          "recorded_accuracy": math.nan if recorded is None else float(recorded),
                          "dt_mean": float(torch.cat(net.dt).mean()), "dt_uniform": is_uniform(net.dt)}])
    write_table(outputs["runs"], runs)
    write_table(outputs["conditions"], pd.DataFrame(rows))
    log.info("%s: clean accuracy %.4f, %d perturbed evaluations", model, rows[0]["accuracy"], len(rows) - 1)


def write_shard(inputs: Mapping[str, Sequence[str | Path]], outputs: Mapping[str, str]) -> None:
    """This invocation's evaluations (``inputs``: table -> the per-model files) as one shard (table -> path)."""
    for table, paths in inputs.items():
        frames = [read_table(path, f"robustness {table}") for path in paths]
        empty = pd.DataFrame(columns=[*RUN_KEYS, *(RECORD_COLUMNS if table == "runs" else ())])
        write_table(outputs[table], pd.concat(frames, ignore_index=True) if frames else empty)
