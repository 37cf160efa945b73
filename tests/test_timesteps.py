"""dt samplers: moments, clipping, skew, determinism, and config errors."""

import numpy as np
import pytest
import scipy.stats
import torch

from htsep.ep.timesteps import TimeStepSpecError, layer_specs, sample_time_steps


def draw(spec, n=200_000, seed=0):
    return sample_time_steps(n, spec, np.random.default_rng(seed)).double().numpy()


@pytest.mark.parametrize("dist", ["normal", "lognormal", "gamma"])
def test_moment_matched_mean_and_std(dist):
    dt = draw({"distribution": dist, "mean": 0.3, "std": 0.05})
    assert dt.mean() == pytest.approx(0.3, abs=1e-3)
    assert dt.std() == pytest.approx(0.05, rel=0.02)


@pytest.mark.parametrize("dist,sign", [("normal", 0), ("lognormal", 1), ("gamma", 1)])
def test_skew_sign(dist, sign):
    skew = scipy.stats.skew(draw({"distribution": dist, "mean": 0.3, "std": 0.08}))
    if sign:
        assert skew > 0.3  # right-skewed (lognormal CV 0.27 -> 0.82, gamma -> 0.53)
    else:
        assert abs(skew) < 0.05


def test_clipping_bounds_every_draw():
    dt = draw({"distribution": "normal", "mean": 0.3, "std": 0.2, "clip_min": 0.2, "clip_max": 0.4})
    assert dt.min() == pytest.approx(0.2) and dt.max() == pytest.approx(0.4)
    assert (dt == np.float32(0.2)).mean() > 0.25  # a normal with std 0.2 puts ~31% below 0.2


def test_uniform_and_constant():
    dt = draw({"distribution": "uniform", "low": 0.2, "high": 0.4})
    assert 0.2 <= dt.min() and dt.max() <= 0.4 and dt.mean() == pytest.approx(0.3, abs=1e-3)
    assert np.all(draw({"distribution": "constant", "value": 0.25}, n=10) == np.float32(0.25))


def test_same_generator_seed_same_draw():
    spec = {"distribution": "gamma", "mean": 0.3, "std": 0.05}
    assert np.array_equal(draw(spec, 100, seed=4), draw(spec, 100, seed=4))
    assert not np.array_equal(draw(spec, 100, seed=4), draw(spec, 100, seed=5))


def test_output_is_float32_tensor():
    dt = sample_time_steps(7, {"distribution": "constant", "value": 0.5}, np.random.default_rng(0))
    assert isinstance(dt, torch.Tensor) and dt.dtype == torch.float32 and dt.shape == (7,)


@pytest.mark.parametrize("spec,message", [
    ({"distribution": "constant", "value": -0.1}, r"dt\.value: dt must lie in \(0, 1\], got -0.1"),
    ({"distribution": "constant", "value": 1.5}, "dt.value"),
    ({"distribution": "normal", "mean": 0.3, "std": 0.05, "clip_min": 0.0}, "clip_min"),
    ({"distribution": "normal", "mean": 0.3, "std": 0.05, "clip_max": 1.2}, "clip_max=1.2"),
    ({"distribution": "normal", "mean": 0.3, "std": -1}, r"dt\.std"),
    ({"distribution": "gamma", "mean": -0.3, "std": 0.1}, r"dt\.mean"),
    ({"distribution": "cauchy"}, "dt.distribution"),
    ({"distribution": "normal", "mean": 0.3, "sd": 0.05}, "unknown key"),
])
def test_bad_specs_name_the_key(spec, message):
    with pytest.raises(TimeStepSpecError, match=message):
        sample_time_steps(3, spec, np.random.default_rng(0))


def test_per_layer_override():
    a, b = {"distribution": "constant", "value": 0.2}, {"distribution": "constant", "value": 0.4}
    assert layer_specs(a, 3) == [a, a, a]
    assert layer_specs([a, b], 2) == [a, b]
    with pytest.raises(TimeStepSpecError, match="needs 2 entries, got 3"):
        layer_specs([a, b, a], 2)
