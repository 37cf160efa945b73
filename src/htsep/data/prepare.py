"""Datasets for EP training: verified torchvision archives turned into cached uint8 tensors with provenance.

``prepare_dataset`` writes ``<root>/<name>/train.pt`` and ``<root>/<name>/test.pt``. The archives are those of
torchvision's dataset classes, checked against their ``resources`` MD5 lists and read with torchvision's IDX
readers; torchvision's files (archives, extracted IDX files) live under ``<root>/torchvision/<Class>/raw``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision.datasets import KMNIST, MNIST, FashionMNIST
from torchvision.datasets import utils as tv_utils
from torchvision.datasets.mnist import read_image_file, read_label_file

from ..config import dataset_label
from .subsets import first_per_class

FORMAT = 1
SPLITS = ("official", "test-holdout")
SYNTHETIC_DEFAULTS = {"n_train": 2000, "n_test": 500, "seed": 0}
_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class SyntheticMNIST(MNIST):
    """Seeded, learnable 10-class stand-in for MNIST, generated locally as the same four gzipped IDX archives.

    The archives' MD5s depend on the generator settings; they are computed when the archives are written.
    """

    mirrors: list[str] = []
    resources = [(filename, None) for filename, _ in MNIST.resources]
    classes = [f"{k} - prototype {k}" for k in range(10)]


DATASETS: dict[str, type[MNIST]] = {
    "mnist": MNIST,
    "kmnist": KMNIST,
    "fashion_mnist": FashionMNIST,
    "synthetic": SyntheticMNIST,
}


class DatasetError(RuntimeError):
    """Dataset archives are missing, corrupt, or could not be downloaded."""


@contextmanager
def _staged(target: Path) -> Iterator[Path]:
    """A temporary path next to ``target``, moved onto ``target`` only if the block succeeds."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def synthetic_arrays(n_train: int = 2000, n_test: int = 500, seed: int = 0) -> dict[str, np.ndarray]:
    """Images (uint8 [N,28,28]) and labels (uint8 [N]) keyed by MNIST IDX file name (without ``.gz``).

    Each class is a prototype of three random blurred strokes; samples are the prototype shifted by up to
    2 px, scaled by a random gain and overlaid with Gaussian noise. Prototypes, train and test samples use
    independent streams of ``seed``, so ``n_train`` does not change the test set.
    """
    proto_seq, train_seq, test_seq = np.random.SeedSequence(seed).spawn(3)
    rng = np.random.default_rng(proto_seq)
    ends = rng.uniform(5, 22, size=(2, 10, 3, 1, 2))  # (start/end, class, stroke, 1, yx)
    points = ends[0] + np.linspace(0, 1, 16)[:, None] * (ends[1] - ends[0])  # [10, 3, 16, 2]
    grid = np.arange(28, dtype=np.float64)
    dist2 = (grid[:, None] - points[..., 0, None, None]) ** 2 + (grid - points[..., 1, None, None]) ** 2
    prototypes = np.clip(np.exp(-dist2 / (2 * 1.2**2)).sum(axis=(1, 2)), 0, 1)  # [10, 28, 28]
    padded = np.pad(prototypes, ((0, 0), (2, 2), (2, 2)))

    arrays = {}
    for prefix, n, seq in (("train", n_train, train_seq), ("t10k", n_test, test_seq)):
        rng = np.random.default_rng(seq)
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        rows, cols = (2 + rng.integers(-2, 3, size=(2, n, 1)) + np.arange(28)).astype(np.intp)
        shifted = padded[labels[:, None, None], rows[:, :, None], cols[:, None, :]]
        images = rng.uniform(0.6, 1.0, size=(n, 1, 1)) * shifted + rng.normal(0, 0.15, size=(n, 28, 28))
        images_stem, labels_stem = _STEMS[prefix]
        arrays[images_stem] = np.rint(np.clip(images, 0, 1) * 255).astype(np.uint8)
        arrays[labels_stem] = labels
    return arrays


def write_synthetic_archives(
    raw_folder: str | os.PathLike, n_train: int = 2000, n_test: int = 500, seed: int = 0
) -> list[tuple[str, str]]:
    """Write ``synthetic_arrays`` as MNIST-format gzipped IDX archives; return ``[(filename, md5)]``."""
    raw = Path(raw_folder)
    raw.mkdir(parents=True, exist_ok=True)
    arrays = synthetic_arrays(n_train, n_test, seed)
    resources = []
    for filename, _ in SyntheticMNIST.resources:
        array = arrays[filename.removesuffix(".gz")]
        header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
        with _staged(raw / filename) as tmp:
            with open(tmp, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
                gz.write(header + array.tobytes())
        resources.append((filename, tv_utils.calculate_md5(raw / filename)))
    return resources


def _fetch(name: str, cls: type[MNIST], filename: str, md5: str, raw: Path, mirror: Path | None) -> None:
    """Make ``raw/filename`` a verified archive: keep a valid one, else copy from ``mirror`` or download."""
    target = raw / filename
    if tv_utils.check_integrity(target, md5):
        return
    label = dataset_label(name)
    holding = f"a folder holding {cls.__name__}/raw/{filename}"
    hint = (
        " Or use split test-holdout, which needs only the t10k archives."
        if filename.startswith("train")
        else ""
    )
    if mirror is not None:
        source = mirror / cls.__name__ / "raw" / filename
        if not source.is_file():
            raise DatasetError(
                f"{label}: archive {filename} (expected MD5 {md5}) not found in mirror {source.parent} "
                f"nor in working folder {raw}. To fix: point data.mirror to {holding}, or unset it to "
                f"download.{hint}"
            )
        with _staged(target) as tmp:
            shutil.copyfile(source, tmp)
            if not tv_utils.check_integrity(tmp, md5):
                raise DatasetError(
                    f"{label}: archive {source} is corrupt: expected MD5 {md5}, found MD5 "
                    f"{tv_utils.calculate_md5(tmp)}. To fix: replace it with the official file, point "
                    f"data.mirror to {holding}, or unset it to download.{hint}"
                )
        return
    errors = []
    for base in cls.mirrors:
        try:
            tv_utils.download_url(f"{base}{filename}", os.fspath(raw), filename, md5)
            return
        except (OSError, RuntimeError) as err:
            errors.append(f"{base}{filename}: {type(err).__name__}: {err}")
    found = f" (the file there has MD5 {tv_utils.calculate_md5(target)})" if target.is_file() else ""
    raise DatasetError(
        f"{label}: archive {filename} (expected MD5 {md5}) is not in working folder {raw}{found} and "
        f"could not be downloaded: {'; '.join(errors) or 'no download URL'}. To fix: check network access, "
        f"or set data.mirror to {holding}.{hint}"
    )


def _stratified_holdout(labels: torch.Tensor, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, held-out) indices; a seeded ``round(fraction * n_c)`` of each class c is held out."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for c in np.unique(labels.numpy()):
        idx = rng.permutation(np.flatnonzero(labels.numpy() == c))
        k = round(fraction * len(idx))
        held.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def _is_current(paths: dict[str, Path], request: dict) -> bool:
    """True when both prepared files exist and were made for exactly ``request``."""
    try:
        for path in paths.values():
            provenance = torch.load(path, weights_only=True, mmap=True)["provenance"]
            if {key: provenance.get(key) for key in request} != request:
                return False
    except Exception:  # missing, partial or foreign file: prepare afresh
        return False
    return True


def prepare_dataset(
    name: str,
    root: str | os.PathLike,
    mirror: str | os.PathLike | None = None,
    split: str = "official",
    holdout_fraction: float = 0.2,
    split_seed: int = 0,
    subset: int | None = None,
    synthetic: dict | None = None,
) -> dict[str, Path]:
    """Prepare ``name`` under ``root``; return ``{"train": root/name/train.pt, "test": root/name/test.pt}``.

    ``split="official"`` uses torchvision's train/test sets; ``"test-holdout"`` needs only the official test
    archives and splits them, stratified by class and seeded by ``split_seed``, into a training part and a
    ``holdout_fraction`` evaluation part (saved as ``test.pt``). ``subset`` keeps the first N training images
    per class. ``mirror`` is a read-only folder in torchvision layout (``<Class>/raw/*.gz``) used instead of
    the network. ``synthetic`` (``n_train``, ``n_test``, ``seed``) configures the ``synthetic`` dataset and is
    ignored for the others. Files already prepared for the same request are kept as they are; the outputs
    are replaced only once everything succeeded. Raises ``DatasetError`` for missing or corrupt archives.
    """
    holdout = split == "test-holdout"
    _check_request(name, split, holdout_fraction, subset, synthetic)
    cls = DATASETS[name]
    out = Path(root) / name
    paths = {"train": out / "train.pt", "test": out / "test.pt"}
    prefixes = ("t10k",) if holdout else ("train", "t10k")
    needed = {stem + ".gz" for prefix in prefixes for stem in _STEMS[prefix]}
    request = {
        "format": FORMAT,
        "dataset": name,
        "split": {
            "split": split,
            "holdout_fraction": float(holdout_fraction) if holdout else None,
            "split_seed": int(split_seed) if holdout else None,
            "subset": subset,
        },
        "synthetic": {key: int(value) for key, value in {**SYNTHETIC_DEFAULTS, **(synthetic or {})}.items()}
        if cls is SyntheticMNIST else None,
    }
    if cls is not SyntheticMNIST:
        request["archives"] = {f: md5 for f, md5 in cls.resources if f in needed}
    if _is_current(paths, request):
        return paths

    raw = Path(root) / "torchvision" / cls.__name__ / "raw"
    archives, source = _fetch_archives(name, cls, needed, raw, mirror, request["synthetic"])
    sets = {prefix: (read_image_file(os.fspath(raw / _STEMS[prefix][0])),
                     read_label_file(os.fspath(raw / _STEMS[prefix][1]))) for prefix in prefixes}
    parts = _parts(sets, holdout, holdout_fraction, split_seed, subset)
    provenance = {**request, "archives": archives, "label": dataset_label(name, split),
                  "torchvision_class": f"{cls.__module__}.{cls.__qualname__}",
                  "torchvision_version": torchvision.__version__, "source": source}
    out.mkdir(parents=True, exist_ok=True)
    with _staged(paths["train"]) as train_tmp, _staged(paths["test"]) as test_tmp:
        for part, tmp in (("train", train_tmp), ("test", test_tmp)):
            prefix, index = parts[part]
            index = torch.from_numpy(index).long()
            images, labels = sets[prefix][0][index], sets[prefix][1][index]
            torch.save({"images": images, "labels": labels, "index": index, "provenance": {
                **provenance, "part": part, "files": [stem + ".gz" for stem in _STEMS[prefix]], "n": len(labels),
                "counts_per_class": torch.bincount(labels, minlength=10).tolist()}}, tmp)
    return paths


def _check_request(name: str, split: str, holdout_fraction: float, subset: int | None, synthetic: dict | None):
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    if split == "test-holdout" and not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must lie in (0, 1), got {holdout_fraction}")
    if subset is not None and subset < 1:
        raise ValueError(f"subset must be a positive number of images per class, got {subset}")
    if unknown := set(synthetic or {}) - set(SYNTHETIC_DEFAULTS):
        raise ValueError(f"unknown synthetic settings {sorted(unknown)}; known: {sorted(SYNTHETIC_DEFAULTS)}")


def _fetch_archives(name: str, cls: type[MNIST], needed: set[str], raw: Path, mirror, synthetic: dict | None
                    ) -> tuple[dict[str, str], str]:
    """Make the ``needed`` archives verified and extracted in ``raw`` (generated for the synthetic dataset); returns
    ({archive: md5}, where they came from)."""
    raw.mkdir(parents=True, exist_ok=True)
    if cls is SyntheticMNIST:
        resources, source = write_synthetic_archives(raw, **synthetic), "generated"
    else:
        mirror = None if mirror is None else Path(mirror).resolve()
        resources, source = cls.resources, "download" if mirror is None else f"mirror {mirror}"
    archives = {}
    for filename, md5 in resources:
        if filename in needed:
            _fetch(name, cls, filename, md5, raw, mirror)
            tv_utils.extract_archive(os.fspath(raw / filename), os.fspath(raw))
            archives[filename] = md5
    return archives, source


def _parts(sets: dict, holdout: bool, holdout_fraction: float, split_seed: int, subset: int | None) -> dict:
    """part ('train', 'test') -> (IDX prefix, rows of that file) for an official or test-holdout split."""
    if holdout:
        train_index, test_index = _stratified_holdout(sets["t10k"][1], holdout_fraction, split_seed)
        parts = {"train": ("t10k", train_index), "test": ("t10k", test_index)}
    else:
        parts = {part: (prefix, np.arange(len(sets[prefix][1])))
                 for part, prefix in (("train", "train"), ("test", "t10k"))}
    if subset is not None:
        prefix, index = parts["train"]
        parts["train"] = (prefix, index[first_per_class(sets[prefix][1][index], subset)])
    return parts


def prepare_from_slice(dataset: dict, root: str | Path) -> dict[str, Path]:
    """Prepare one dataset as described by its config slice (htsep.config.data_slice)."""
    synthetic = {k: dataset[k] for k in ("n_train", "n_test", "seed") if k in dataset} or None
    return prepare_dataset(dataset["name"], root, mirror=dataset.get("mirror"), split=dataset.get("split", "official"),
                           holdout_fraction=dataset.get("holdout_fraction", 0.2),
                           split_seed=dataset.get("split_seed", 0), subset=dataset.get("subset"),
                           synthetic=synthetic)
