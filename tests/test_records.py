"""Run records (htsep.records): shards of the test study kept as records rebuild the paper without training, and a
damaged, incomplete or foreign record is named, not used."""

import json
import re
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from htsep.records import RecordError, merge, read_shard, run_digest, save, to_train
from htsep.study import load_config, local_shards

from .conftest import REPO, copy_workflow, snakemake

PAGE_RESOLUTION = 30  # dpi of the rendered pages: enough to tell a drawn figure from an empty frame


def rendered_pages(pdf, folder) -> tuple[list[np.ndarray], list[str]]:
    """Every page of ``pdf`` as an image (pdftoppm) and as text (pdftotext)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-r", str(PAGE_RESOLUTION), "-png", str(pdf), str(folder / "page")], check=True)
    images = [matplotlib.image.imread(path) for path in sorted(folder.glob("page-*.png"))]
    texts = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                           check=True).stdout.split("\f")
    return images, texts[:len(images)]


def ink(image: np.ndarray) -> float:
    """Share of a page's pixels that are not white."""
    return float((image[..., :3].mean(-1) < 0.9).mean())


@pytest.mark.skipif(shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
                    reason="needs poppler-utils")
def test_records_alone_rebuild_the_paper_page_by_page(test_study, tmp_path):
    """The test study's shards saved as records (htsep records save), then a records-only build in a fresh workflow:
    nothing is trained, every generated part equals the study's, every figure page has drawn content and no
    reference is left unresolved."""
    root = tmp_path / "records"
    config = load_config([REPO / "config/config.yaml", REPO / "config/test.yaml"])
    local = {e: [test_study / path for path in paths] for e, paths in local_shards(config).items()}
    saved = save(local, "test", root, "2026-01-01")
    assert {p.parent.parent.name for p in saved} == {f"2026-01-01-{e}" for e in ("grid", "calibration", "mechanism",
                                                                                   "frontier", "confirmatory",
                                                                                   "factorial", "robustness",
                                                                                   "sensitivity", "depth")}
    assert (root / "2026-01-01-frontier/shards/test-synthetic-lr-seeds0-2.runs.csv").exists()
    (tmp_path / "rebuild").mkdir()
    workdir = copy_workflow(tmp_path / "rebuild")
    (workdir / "records.yaml").write_text(f"records: {{root: {root}, train: none}}\n")
    out = snakemake(workdir, "--configfile", "config/test.yaml", "records.yaml")
    ran = set(re.findall(r"^\s*(?:local)?rule (\w+):", out.stdout, flags=re.MULTILINE))
    trained = ("train", "prepare", "calibrate_run", "mech_spectral", "frontier_sweep", "mech_landscape_train",
               "sensitivity_train", "depth_search_run", "depth_train")
    assert not {rule for rule in ran if rule.startswith(trained)}, ran
    assert not (workdir / "results/runs").exists()
    for part in (test_study / "paper/generated").glob("*.tex"):
        if part.name != "provenance.tex":
            assert (workdir / "paper/generated" / part.name).read_text() == part.read_text(), part.name
    provenance = (workdir / "paper/generated/provenance.tex").read_text()
    assert "2026-01-01-grid/shards/test-lab" in provenance and "this invocation" not in provenance
    images, texts = rendered_pages(workdir / "paper/build/paper.pdf", tmp_path / "pages")
    figure_pages = [i for i, text in enumerate(texts) if re.search(r"^\s*Figure \d+:", text, flags=re.MULTILINE)]
    assert len(figure_pages) >= 5
    for i in figure_pages:
        assert ink(images[i]) > 0.03, f"page {i + 1} shows a figure caption but hardly any drawing"
    assert not any("??" in text for text in texts), [i + 1 for i, text in enumerate(texts) if "??" in text]


def _shard(tmp_path, name, frame):
    path = tmp_path / f"{name}.runs.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_damaged_or_incomplete_record_is_an_error_naming_it(tmp_path):
    keys = ["dataset", "seed"]
    good = pd.DataFrame({"dataset": ["d", "d"], "seed": [0, 1], "acc": [0.5, 0.6], "config": ['{"a": 1}'] * 2,
                         "code_fingerprint": "c", "relaxation_kernel": "k"})
    lacking = _shard(tmp_path, "lacking", good.drop(columns="config"))
    with pytest.raises(RecordError, match=f"record {re.escape(str(lacking))}: lacks the columns \\['config'\\]"):
        read_shard(lacking, keys)
    incomplete = _shard(tmp_path, "incomplete", good.assign(seed=[0, None]))
    with pytest.raises(RecordError, match="incomplete"):
        read_shard(incomplete, keys)
    garbage = tmp_path / "garbage.runs.csv"
    garbage.write_bytes(b"\x00\xff" * 50)
    with pytest.raises(RecordError, match=re.escape(str(garbage))):
        read_shard(garbage, keys)
    assert garbage.exists()  # committed data: nothing is moved


def test_records_add_up_and_the_last_read_wins(tmp_path):
    keys = ["dataset", "seed"]
    config = {"training": {"lr": [0.1]}, "sweep": {"name": "x"}}
    declared = [[["d", s], run_digest(config)] for s in (0, 1, 2)]
    row = {"dataset": "d", "config": json.dumps(config), "code_fingerprint": "old", "relaxation_kernel": "k"}
    first = _shard(tmp_path, "a", pd.DataFrame([{**row, "seed": 0, "acc": 0.1}, {**row, "seed": 1, "acc": 0.2}]))
    second = _shard(tmp_path, "b", pd.DataFrame([{**row, "seed": 1, "acc": 0.3, "code_fingerprint": "new"}]))
    local = pd.DataFrame([{**row, "seed": 2, "acc": 0.4, "config": json.dumps({**config, "sweep": {"other": 1}})}])
    merged = merge([first, second], local, keys, declared, "test").set_index("seed")
    assert merged["acc"].to_dict() == {0: 0.1, 1: 0.3, 2: 0.4}  # the sweep tag is bookkeeping, not config
    assert merged.loc[1, "record"] == str(tmp_path / "b") and merged.loc[2, "record"] == "this invocation"
    shard = tmp_path / "shard.runs.csv"
    pd.DataFrame({"kind": ["ep"], "point": ["p"], "seed": [0], "config": ["{}"], "code_fingerprint": ["c"],
                  "relaxation_kernel": ["k"]}).to_csv(shard, index=False)
    assert save({"calibration": [shard]}, "once", tmp_path / "root", "2026-01-01") == [
        tmp_path / "root/2026-01-01-calibration/shards/once.runs.csv"]
    with pytest.raises(RecordError, match="exist"):
        save({"calibration": [shard]}, "once", tmp_path / "root", "2026-01-01")


def test_a_campaign_trains_what_the_records_lack(tmp_path):
    """records.train missing: the declared runs no committed record holds with the declared run config (a record of
    another config does not count); all and none as named."""
    keys = ["dataset", "seed"]
    declared = {("d", s): {"training": {"lr": [0.1]}, "seed": s} for s in (0, 1, 2, 3)}
    row = {"dataset": "d", "code_fingerprint": "c", "relaxation_kernel": "k"}
    folder = tmp_path / "2026-01-01-grid" / "shards"
    folder.mkdir(parents=True)
    pd.DataFrame([{**row, "seed": 0, "config": json.dumps(declared[("d", 0)])},
                  {**row, "seed": 2, "config": json.dumps(declared[("d", 2)])},
                  {**row, "seed": 3, "config": json.dumps({"training": {"lr": [0.5]}, "seed": 3})}]
                 ).to_csv(folder / "a.runs.csv", index=False)
    config = {"records": {"root": str(tmp_path), "train": "missing"}}
    assert to_train(config, "grid", "runs", keys, declared) == [("d", 1), ("d", 3)]
    assert to_train(config | {"records": {"root": str(tmp_path), "train": "all"}}, "grid", "runs", keys,
                    declared) == list(declared)
    assert to_train(config | {"records": {"root": str(tmp_path), "train": "none"}}, "grid", "runs", keys,
                    declared) == []
