"""Pipeline files: written atomically (complete new content or untouched), read through checks that name a damaged
file, move it aside and say how to remake it.

Every reader here loads without unpickling code (``torch.load(..., weights_only=True)``); a file that cannot be read
as what it should be raises ``DamagedFileError`` after being renamed to ``<name>.damaged``, so that the next
``snakemake`` run sees it missing and reruns the rule that makes it.
"""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

DAMAGED = ".damaged"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()  # outputs get the usual permissions (0o666 & ~umask), not mkstemp's 0o600


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path, obj) -> Path:
    return atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"))


def write_text(path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def write_torch(path, obj) -> Path:
    """torch.save ``obj``: the same content gives the same bytes (the archive is not named after the file)."""
    import torch  # here, not at the top: readers of tables and JSON should not pay torch's import

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, lambda p: p.write_bytes(buffer.getvalue()))


def write_table(path, frame: pd.DataFrame) -> Path:
    """CSV or parquet by suffix."""
    path = Path(path)
    if path.suffix == ".parquet":
        return atomic_write(path, lambda p: frame.to_parquet(p, index=False))
    return atomic_write(path, lambda p: frame.to_csv(p, index=False))


class DamagedFileError(RuntimeError):
    """A pipeline file that cannot be read as what it should be (it has been moved aside)."""


def set_aside(path: str | Path) -> Path:
    """Rename ``path`` to ``<path>.damaged`` (replacing an older one) and return the new name."""
    path = Path(path)
    aside = path.with_name(path.name + DAMAGED)
    os.replace(path, aside)
    return aside


def damaged(path: str | Path, problem: str) -> DamagedFileError:
    """Set ``path`` aside and return the error that says what is wrong with it and how to remake it."""
    aside = set_aside(path)
    return DamagedFileError(f"{path}: {problem}; moved to {aside.name}; rerun to remake {Path(path).name}")


@contextmanager
def reading(path: str | Path, what: str) -> Iterator[None]:
    """Any failure to read ``path`` as a ``what`` (but its absence) becomes a DamagedFileError."""
    try:
        yield
    except (DamagedFileError, FileNotFoundError, IsADirectoryError, PermissionError, MemoryError):
        raise  # absent, or a problem of the machine rather than the file: nothing to set aside
    except OSError as err:
        if err.errno == errno.EIO:  # a failing disk: the file may be fine
            raise
        raise damaged(path, f"not a readable {what} ({type(err).__name__}: {str(err).splitlines()[0][:300]})") \
            from err
    except Exception as err:
        raise damaged(path, f"not a readable {what} ({type(err).__name__}: {str(err).splitlines()[0][:300]})") \
            from err


def read_torch(path: str | Path, what: str, map_location=None):
    """A torch file we wrote (tensors, numbers, strings, lists and dicts only: nothing that runs code)."""
    import torch

    with reading(path, what):
        return torch.load(path, map_location=map_location, weights_only=True)


def read_json(path: str | Path, what: str) -> dict:
    with reading(path, what):
        return json.loads(Path(path).read_text())


def read_table(path: str | Path, what: str = "table") -> pd.DataFrame:
    """A CSV or parquet table by suffix (an empty CSV is an empty table)."""
    path = Path(path)
    with reading(path, what):
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        try:
            return pd.read_csv(path)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()


def read_run(summary_path: str | Path) -> tuple[dict, pd.DataFrame]:
    """A finished run's summary.json and the metrics.csv beside it, checked against each other: one row per epoch
    1 .. epochs_completed."""
    summary_path = Path(summary_path)
    summary = read_json(summary_path, "run summary")
    metrics_path = summary_path.parent / "metrics.csv"
    metrics = read_table(metrics_path, "metrics table")
    with reading(summary_path, "run summary"):
        completed = int(summary["epochs_completed"])
    epochs = metrics["epoch"].tolist() if "epoch" in metrics else []
    if epochs != list(range(1, completed + 1)):
        raise damaged(metrics_path, f"epochs {epochs[:3]}{'...' if len(epochs) > 3 else ''} ({len(epochs)} rows) "
                                    f"do not match the {completed} epochs its summary.json completed")
    return summary, metrics
