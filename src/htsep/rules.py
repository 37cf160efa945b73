"""What the workflow's rule scripts call: each rule is one function of this package, its log in the rule's log."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path


def run_rule(snakemake, body: Callable[[], object]) -> None:
    """Run ``body`` with logging and stderr sent to the rule's log file."""
    log_path = Path(snakemake.log[0])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log_file, contextlib.redirect_stderr(log_file):
        handler = logging.StreamHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            body()
        except Exception:
            logging.exception("rule failed")
            raise
        finally:
            root.removeHandler(handler)
            sys.stderr.flush()
