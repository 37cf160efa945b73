"""Dataset preparation: torchvision IDX round trip, MD5 checks, offline errors, the test-set holdout split."""

import gzip
import hashlib
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import MNIST

from htsep.config import dataset_label
from htsep.data.prepare import DATASETS, DatasetError, prepare_dataset, synthetic_arrays, write_synthetic_archives
from htsep.data.splits import as_tensors, load_split

SMALL = {"n_train": 400, "n_test": 300, "seed": 3}
MIRROR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def snapshot(paths):
    return {part: (path.read_bytes(), path.stat().st_mtime_ns) for part, path in paths.items()}


@pytest.fixture
def no_network(monkeypatch):
    """Every URL open fails as it does offline; the list records the attempted URLs."""
    attempts = []

    def refuse(request, *args, **kwargs):
        attempts.append(getattr(request, "full_url", request))
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return attempts


@pytest.fixture
def synthetic_mirror(tmp_path, monkeypatch):
    """A mirror holding synthetic archives under MNIST's name, with MNIST's MD5 list pointing at them."""
    raw = tmp_path / "mirror" / "MNIST" / "raw"
    monkeypatch.setattr(MNIST, "resources", write_synthetic_archives(raw, **SMALL))
    return tmp_path / "mirror"


def test_registry_and_labels():
    assert {name: cls.__name__ for name, cls in DATASETS.items()} == {
        "mnist": "MNIST",
        "kmnist": "KMNIST",
        "fashion_mnist": "FashionMNIST",
        "synthetic": "SyntheticMNIST",
    }
    assert issubclass(DATASETS["synthetic"], MNIST)
    assert dataset_label("fashion_mnist", "official") == "Fashion-MNIST"
    assert dataset_label("synthetic", "official") == "Synthetic"
    assert dataset_label("kmnist", "test-holdout") == "KMNIST (test-set holdout)"


def test_synthetic_idx_round_trip(tmp_path):
    paths = prepare_dataset("synthetic", tmp_path, synthetic=SMALL)
    assert paths == {"train": tmp_path / "synthetic" / "train.pt", "test": tmp_path / "synthetic" / "test.pt"}
    arrays = synthetic_arrays(**SMALL)
    raw = tmp_path / "torchvision" / "SyntheticMNIST" / "raw"
    with gzip.open(raw / "t10k-images-idx3-ubyte.gz") as fh:
        assert fh.read(16) == bytes.fromhex("000008030000012c0000001c0000001c")
    for part, prefix in (("train", "train"), ("test", "t10k")):
        split = load_split(paths[part])
        assert split["images"].dtype == torch.uint8 and split["labels"].dtype == torch.int64
        assert np.array_equal(split["images"].numpy(), arrays[f"{prefix}-images-idx3-ubyte"])
        assert np.array_equal(split["labels"].numpy(), arrays[f"{prefix}-labels-idx1-ubyte"])
        provenance = split["provenance"]
        assert provenance["dataset"] == "synthetic" and provenance["source"] == "generated"
        assert provenance["torchvision_class"].endswith("SyntheticMNIST")
        assert provenance["archives"] == {f.name: md5(f) for f in raw.glob("*.gz")}
        assert provenance["synthetic"] == SMALL
        assert sum(provenance["counts_per_class"]) == provenance["n"] == len(split["labels"])
    # SyntheticMNIST really is a torchvision dataset: torchvision itself reads the extracted files.
    tv = DATASETS["synthetic"](tmp_path / "torchvision", train=False)
    assert np.array_equal(tv.data.numpy(), arrays["t10k-images-idx3-ubyte"])


def test_synthetic_is_seeded_and_learnable():
    arrays = synthetic_arrays(**SMALL)
    assert all(np.array_equal(arrays[k], v) for k, v in synthetic_arrays(**SMALL).items())
    other = synthetic_arrays(**{**SMALL, "seed": 4})
    assert not np.array_equal(arrays["t10k-images-idx3-ubyte"], other["t10k-images-idx3-ubyte"])

    data = synthetic_arrays(n_train=2000, n_test=500, seed=0)
    x = {
        p: torch.tensor(data[f"{p}-images-idx3-ubyte"].reshape(-1, 784) / 255, dtype=torch.float32)
        for p in ("train", "t10k")
    }
    y = {p: torch.tensor(data[f"{p}-labels-idx1-ubyte"], dtype=torch.int64) for p in ("train", "t10k")}
    torch.manual_seed(0)
    model = torch.nn.Linear(784, 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):  # two epochs of logistic regression
        for batch in torch.randperm(len(y["train"])).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x["train"][batch]), y["train"][batch]).backward()
            optimizer.step()
    accuracy = (model(x["t10k"]).argmax(1) == y["t10k"]).float().mean().item()
    assert accuracy > 0.9


def test_mirror_is_copied_verified_and_left_alone(tmp_path, synthetic_mirror, no_network):
    before = {f.name: md5(f) for f in (synthetic_mirror / "MNIST" / "raw").iterdir()}
    paths = prepare_dataset("mnist", tmp_path / "data", mirror=synthetic_mirror)
    provenance = load_split(paths["train"])["provenance"]
    assert provenance["source"] == f"mirror {synthetic_mirror.resolve()}"
    assert (
        provenance["archives"] == before
        and provenance["torchvision_class"] == "torchvision.datasets.mnist.MNIST"
    )
    assert {f.name: md5(f) for f in (synthetic_mirror / "MNIST" / "raw").iterdir()} == before
    assert (tmp_path / "data" / "torchvision" / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert no_network == []


def test_corrupt_mirror_archive_raises_and_keeps_prepared_files(tmp_path, synthetic_mirror, no_network):
    root = tmp_path / "data"
    paths = prepare_dataset("mnist", root, mirror=synthetic_mirror)
    before = snapshot(paths)

    name = "t10k-images-idx3-ubyte.gz"
    archive = synthetic_mirror / "MNIST" / "raw" / name
    expected = md5(archive)
    data = bytearray(archive.read_bytes())
    data[100] ^= 0xFF
    archive.write_bytes(bytes(data))
    (root / "torchvision" / "MNIST" / "raw" / name).unlink()  # force a fresh copy from the mirror

    with pytest.raises(DatasetError) as info:
        prepare_dataset("mnist", root, mirror=synthetic_mirror, subset=5)
    message = str(info.value)
    assert "MNIST" in message and name in message and str(synthetic_mirror.resolve()) in message
    assert expected in message and md5(archive) in message
    assert snapshot(paths) == before
    assert sorted(p.name for p in (root / "mnist").iterdir()) == ["test.pt", "train.pt"]
    assert not (root / "torchvision" / "MNIST" / "raw" / name).exists()  # the bad copy is not kept
    assert no_network == []


def test_corrupt_working_copy_is_replaced_from_mirror(tmp_path, synthetic_mirror):
    root = tmp_path / "data"
    prepare_dataset("mnist", root, mirror=synthetic_mirror)
    copy = root / "torchvision" / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    copy.write_bytes(b"garbage")
    paths = prepare_dataset("mnist", root, mirror=synthetic_mirror, subset=10)
    assert md5(copy) == md5(synthetic_mirror / "MNIST" / "raw" / copy.name)
    assert load_split(paths["train"])["provenance"]["counts_per_class"] == [10] * 10


def test_missing_archive_without_network_raises_clear_error(tmp_path, no_network):
    root = tmp_path / "data"
    with pytest.raises(DatasetError) as info:
        prepare_dataset("kmnist", root)
    message = str(info.value)
    assert "KMNIST" in message and "train-images-idx3-ubyte.gz" in message
    assert "bdb82020997e1d708af4cf47b453dcf7" in message
    assert str(root / "torchvision" / "KMNIST" / "raw") in message and "network is unreachable" in message
    assert "data.mirror" in message and "KMNIST/raw/train-images-idx3-ubyte.gz" in message
    assert no_network and all(url.startswith("http") for url in no_network)
    assert not (root / "kmnist" / "train.pt").exists()


def test_missing_archive_in_mirror_raises_without_network(tmp_path, no_network):
    (tmp_path / "mirror").mkdir()
    with pytest.raises(DatasetError, match=r"FashionMNIST/raw/train-images-idx3-ubyte\.gz") as info:
        prepare_dataset("fashion_mnist", tmp_path / "data", mirror=tmp_path / "mirror")
    assert "Fashion-MNIST" in str(info.value) and str((tmp_path / "mirror").resolve()) in str(info.value)
    assert no_network == []


def test_test_holdout_is_stratified_seeded_and_partitions_the_test_set(tmp_path):
    official = load_split(prepare_dataset("synthetic", tmp_path / "official", synthetic=SMALL)["test"])
    fraction = 0.25

    def holdout(root, seed):
        paths = prepare_dataset(
            "synthetic",
            root,
            split="test-holdout",
            holdout_fraction=fraction,
            split_seed=seed,
            synthetic=SMALL,
        )
        return load_split(paths["train"]), load_split(paths["test"])

    train, held = holdout(tmp_path / "a", 0)
    counts = torch.bincount(official["labels"], minlength=10)
    held_counts = torch.bincount(held["labels"], minlength=10)
    assert ((held_counts - fraction * counts).abs() <= 1).all()
    assert torch.equal(held_counts + torch.bincount(train["labels"], minlength=10), counts)
    assert held["provenance"]["counts_per_class"] == held_counts.tolist()
    assert held["provenance"]["label"] == "Synthetic (test-set holdout)"
    assert held["provenance"]["split"] == {
        "split": "test-holdout",
        "holdout_fraction": fraction,
        "split_seed": 0,
        "subset": None,
    }

    # Disjoint, and together exactly the official test set (rows of the test IDX file).
    assert not set(train["index"].tolist()) & set(held["index"].tolist())
    union = torch.cat([train["index"], held["index"]]).sort().values
    assert torch.equal(union, torch.arange(len(official["labels"])))
    for part in (train, held):
        assert torch.equal(part["images"], official["images"][part["index"]])
        assert torch.equal(part["labels"], official["labels"][part["index"]])

    again_train, again_held = holdout(tmp_path / "b", 0)
    assert torch.equal(again_held["images"], held["images"]) and torch.equal(
        again_train["index"], train["index"]
    )
    _, other_held = holdout(tmp_path / "c", 1)
    assert not torch.equal(other_held["index"], held["index"])


def test_subset_keeps_first_per_class(tmp_path):
    full = load_split(prepare_dataset("synthetic", tmp_path / "full", synthetic=SMALL)["train"])
    part = load_split(prepare_dataset("synthetic", tmp_path / "sub", subset=7, synthetic=SMALL)["train"])
    assert part["provenance"]["counts_per_class"] == [7] * 10
    expected = torch.cat([torch.nonzero(full["labels"] == c).flatten()[:7] for c in range(10)]).sort().values
    assert torch.equal(part["index"], expected)
    assert torch.equal(part["images"], full["images"][expected])
    with pytest.raises(ValueError, match="subset=41"):
        prepare_dataset("synthetic", tmp_path / "big", subset=41, synthetic=SMALL)


def test_repeat_is_cached_and_a_changed_request_reprepares(tmp_path):
    paths = prepare_dataset("synthetic", tmp_path, synthetic=SMALL)
    before = snapshot(paths)
    assert prepare_dataset("synthetic", tmp_path, synthetic=SMALL) == paths
    assert snapshot(paths) == before
    cached = load_split(paths["train"])
    assert torch.equal(
        cached["images"], torch.from_numpy(synthetic_arrays(**SMALL)["train-images-idx3-ubyte"])
    )

    prepare_dataset("synthetic", tmp_path, synthetic={**SMALL, "n_train": 200})
    assert load_split(paths["train"])["provenance"]["n"] == 200
    assert snapshot(paths)["test"][0] != before["test"][0]  # provenance changed with the request


def test_as_tensors_normalisation():
    images = torch.tensor([[[0, 255], [51, 102]], [[255, 255], [0, 0]]], dtype=torch.uint8)
    split = {"images": images, "labels": torch.tensor([3, 1])}
    x, y = as_tensors(split, None)
    assert x.dtype == torch.float32 and x.shape == (2, 4) and y.dtype == torch.int64
    assert torch.allclose(x[0], torch.tensor([0.0, 1.0, 0.2, 0.4]))
    x, _ = as_tensors(split, {"mean": 0.5, "std": 0.25})
    assert torch.allclose(x[0], torch.tensor([-2.0, 2.0, -1.2, -0.4]))
    assert torch.equal(split["images"], images)  # input untouched


def require_mirror():
    if not MIRROR.is_dir():
        pytest.skip(f"real-data mirror {MIRROR} is absent")


@pytest.mark.realdata
def test_real_mnist_from_mirror(tmp_path, no_network):
    require_mirror()
    paths = prepare_dataset("mnist", tmp_path, mirror=MIRROR)
    train, test = load_split(paths["train"]), load_split(paths["test"])
    assert train["images"].shape == (60000, 28, 28) and test["images"].shape == (10000, 28, 28)
    counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(train["labels"]).tolist() == counts == train["provenance"]["counts_per_class"]
    x, _ = as_tensors(train, None)
    assert x.mean().item() == pytest.approx(0.1307, abs=1e-3)
    assert x.std().item() == pytest.approx(0.3081, abs=1e-3)
    assert train["provenance"]["archives"] == dict(MNIST.resources)
    assert no_network == []


@pytest.mark.realdata
def test_real_kmnist_test_holdout_from_mirror(tmp_path, no_network):
    require_mirror()
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz"):  # not in the mirror
        prepare_dataset("kmnist", tmp_path, mirror=MIRROR)
    paths = prepare_dataset("kmnist", tmp_path, mirror=MIRROR, split="test-holdout")
    train, held = load_split(paths["train"]), load_split(paths["test"])
    assert train["images"].shape == (8000, 28, 28) and held["images"].shape == (2000, 28, 28)
    assert torch.bincount(held["labels"]).tolist() == [200] * 10
    assert held["provenance"]["label"] == "KMNIST (test-set holdout)"
    assert set(held["provenance"]["archives"]) == {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}
    assert not (tmp_path / "torchvision" / "KMNIST" / "raw" / "train-labels-idx1-ubyte.gz").exists()
    assert no_network == []
