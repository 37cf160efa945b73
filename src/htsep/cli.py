"""Command line: ``htsep data prepare`` and ``htsep train`` (the workflow rules call the same functions)."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date
from pathlib import Path

from .config import DATASET_LABELS, ConfigError, data_slice, run_slice
from .data.prepare import DatasetError, prepare_from_slice
from .files import DamagedFileError
from .paths import RUN_LAYOUT, RUNS_ROOT, run_folder
from .records import RecordError, save
from .study import load_config, local_shards
from .training.runs import train_runs


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line naming the argument (exit 2), as every user error here."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message}\n")


def _number(kind, test, wanted: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text}")
        return value
    return parse


POSITIVE = _number(int, lambda n: n >= 1, "a whole number >= 1")
NON_NEGATIVE = _number(int, lambda n: n >= 0, "a whole number >= 0")
FRACTION = _number(float, lambda x: 0 < x < 1, "a number strictly between 0 and 1")


def _data_prepare(args) -> None:
    if args.config:
        dataset = data_slice(load_config(args.config), args.dataset)
    else:
        dataset = {"name": args.dataset, "split": args.split, "holdout_fraction": args.holdout_fraction,
                   "split_seed": args.split_seed, "subset": args.subset}
    if args.mirror is not None:
        dataset["mirror"] = args.mirror
    paths = prepare_from_slice(dataset, args.root)
    print("\n".join(f"{split}: {path}" for split, path in paths.items()))


def _train(args) -> None:
    config = load_config(args.config)
    if args.dataset not in config["data"]:
        raise ConfigError(f"--dataset {args.dataset}: not configured under data in {', '.join(args.config)}")
    variants = args.variant or config["grid"]["variants"]
    seeds = args.seed if args.seed is not None else config["grid"]["seeds"]
    members = [(v, s) for v in variants for s in seeds]
    if args.out and len(members) > 1:
        raise ConfigError(f"--out names one run folder, but {len(members)} runs were asked for; use --runs-dir")
    protocol = args.protocol or config["run_protocols"][0]
    runs = [run_slice(config, args.dataset, v, s, protocol) for v, s in members]
    root = Path(args.data_root or config["data"]["root"])
    paths = {split: root / args.dataset / f"{split}.pt" for split in ("train", "test")}
    if not all(p.exists() for p in paths.values()):
        paths = prepare_from_slice(data_slice(config, args.dataset), root)
    folders = [args.out] if args.out else [run_folder(protocol, args.dataset, v, s, args.runs_dir) for v, s in members]
    for start in range(0, len(runs), args.runs_per_job):
        stack = slice(start, start + args.runs_per_job)
        for summary in train_runs(runs[stack], paths, folders[stack]):
            status = f"diverged at epoch {summary['diverged_epoch']}" if summary["diverged"] else "completed"
            print(f"{protocol}/{args.dataset}/{summary['variant']}/seed{summary['seed']}: {status}, "
                  f"final test accuracy {summary['final_test_acc']:.4f}, best {summary['best_test_acc']:.4f} "
                  f"(epoch {summary['best_epoch']}), {summary['wall_seconds']:.0f} s on {summary['device']}")


def _records_save(args) -> None:
    config = load_config(args.config)
    for path in save(local_shards(config), args.name, config["records"]["root"], args.date):
        print(path)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="htsep", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="dataset preparation").add_subparsers(dest="action", required=True)
    prep = data.add_parser("prepare", help="download (or copy from a mirror), verify and cache one dataset")
    prep.add_argument("--dataset", required=True, choices=list(DATASET_LABELS))
    prep.add_argument("--root", required=True, help="folder for the prepared files")
    prep.add_argument("--mirror", help="folder in torchvision layout (<Name>/raw/*.gz) to use instead of downloading")
    prep.add_argument("--config", action="append", help="take split settings from these config files")
    prep.add_argument("--split", default="official", choices=["official", "test-holdout"])
    prep.add_argument("--holdout-fraction", type=FRACTION, default=0.2)
    prep.add_argument("--split-seed", type=NON_NEGATIVE, default=0)
    prep.add_argument("--subset", type=POSITIVE, help="first N training images per class")
    prep.set_defaults(func=_data_prepare)

    train = sub.add_parser("train", help="train (dataset, variant, seed) runs; several runs train as one stack")
    train.add_argument("--config", action="append", required=True,
                       help="config file(s), merged in order like snakemake --configfile")
    train.add_argument("--protocol", help="training protocol (config key protocols; default: the first of "
                                          "run_protocols)")
    train.add_argument("--dataset", required=True, choices=list(DATASET_LABELS))
    train.add_argument("--variant", nargs="+", help="variant name(s) (default: the grid's, config key grid.variants)")
    train.add_argument("--seed", type=NON_NEGATIVE, nargs="+", help="seed(s) (default: the grid's, grid.seeds)")
    train.add_argument("--out", help="folder of a single run (metrics.csv, summary.json, model.pt)")
    train.add_argument("--runs-dir", default=RUNS_ROOT,
                       help=f"where several runs go, one folder each: <runs-dir>/{RUN_LAYOUT}")
    train.add_argument("--runs-per-job", type=POSITIVE, default=50, help="runs trained together as one stacked network")
    train.add_argument("--data-root", help="prepared data folder (default: config data.root)")
    train.set_defaults(func=_train)

    records = sub.add_parser("records", help="run records").add_subparsers(dest="action", required=True)
    keep = records.add_parser("save", help="keep this invocation's shards (results/) as committed records")
    keep.add_argument("--name", required=True, help="shard name, e.g. mnist-seeds0-9")
    keep.add_argument("--date", default=date.today().isoformat(), help="the campaign's date (folder prefix)")
    keep.add_argument("--config", action="append", required=True,
                      help="the config file(s) of the invocation whose shards to keep (records.root: where)")
    keep.set_defaults(func=_records_save)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ConfigError as err:
        print(f"htsep: configuration error: {err}", file=sys.stderr)
        return 2
    except (DatasetError, DamagedFileError, RecordError) as err:
        print(f"htsep: data error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
