"""TeX for the paper: plain values formatted for LaTeX, the templates every paper part is written in, and the build.

A paper part's text is a template ``templates/<name>.tex.j2`` in its experiment's folder: LaTeX with ``\\VAR{...}``
values and ``\\BLOCK{...}`` statements, rendered by ``template(path)`` with the filters below (and the test
``is missing``). ``build_pdf`` runs latexmk on ``paper/paper.tex``.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import jinja2
import pandas as pd

from ..files import atomic_write, write_text
from ..paths import number

log = logging.getLogger(__name__)

LATEX_PACKAGES = "latexmk texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended"


# ------------------------------------------------------------------------------------------------- formatting


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_TEX_SPECIAL.get(char, char) for char in str(text))


_MULTIPLIER = re.compile(r"\$\\times\s*([0-9]+(?:\.[0-9]+)?)\$")


def tex_text(text: str) -> str:
    """Free text from config as LaTeX: plain text, every special character escaped; the one markup kept is a
    multiplier written ``$\\times8$`` (a level of a stress axis)."""
    parts = _MULTIPLIER.split(str(text))  # text, number, text, number, ..., text
    return "".join(tex_escape(part) if i % 2 == 0 else f"$\\times{part}$" for i, part in enumerate(parts))


def missing(x) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


def pct(x, digits: int = 2) -> str:
    """A fraction as a percentage (no sign): 0.97123 -> '97.12'; missing -> '--'."""
    return "--" if missing(x) else f"{100 * float(x):.{digits}f}"


def num(x, digits: int = 2, math_mode: bool = False) -> str:
    """A number for text (minus sign as ``$-$``) or, with ``math_mode``, for inside ``$...$``."""
    if missing(x):
        return "--" if not math_mode else r"\text{--}"
    if math.isinf(float(x)):
        text = r"\infty" if x > 0 else r"-\infty"
    else:
        text = f"{float(x):.{digits}f}"
    return text if math_mode else (f"${text}$" if "infty" in text else text.replace("-", "$-$"))


def signed(x, digits: int = 2) -> str:
    """A difference for text with its sign: '+0.02', '$-$0.10' ('0.00' where it rounds to zero); missing -> '--'."""
    if missing(x) or round(float(x), digits) == 0:
        return num(x if missing(x) else 0.0, digits)
    return num(x, digits) if x < 0 else f"+{num(x, digits)}"


def pval(p) -> str:
    """'0.012', '<0.001' or '--' (text mode)."""
    if missing(p):
        return "--"
    return r"$<$0.001" if p < 0.001 else f"{p:.3f}"


def p_eq(p, sub: str = "") -> str:
    """'$p=0.012$', '$p<0.001$' (``sub`` as subscript)."""
    name = f"p_{{\\mathrm{{{sub}}}}}" if sub else "p"
    if missing(p):
        return f"${name}$ n/a"
    return f"${name}<0.001$" if p < 0.001 else f"${name}={p:.3f}$"


def thousands(n: int) -> str:
    """10000 -> '10{,}000'."""
    return f"{int(n):,}".replace(",", "{,}")


def cap(text: str) -> str:
    """The text with its first letter in upper case (the rest unchanged)."""
    return text[:1].upper() + text[1:]


def sep(loop) -> str:
    """What follows an item in a Jinja loop for 'a, b and c'."""
    return "" if loop.last else " and " if loop.revindex == 2 else ", "


FILTERS = {"tex": tex_escape, "text": tex_text, "pct": pct, "num": num, "signed": signed, "pval": pval, "p_eq": p_eq,
           "number": number, "thousands": thousands, "cap": cap, "sep": sep}


@functools.cache
def _environment(folder: Path) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        block_start_string=r"\BLOCK{", block_end_string="}",
        variable_start_string=r"\VAR{", variable_end_string="}",
        comment_start_string=r"\#{", comment_end_string="}",
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters |= FILTERS
    environment.tests["missing"] = missing
    return environment


def template(path: Path) -> jinja2.Template:
    """The template at ``path`` (an experiment's ``templates/<name>.tex.j2``)."""
    return _environment(Path(path).parent).get_template(Path(path).name)


def build_pdf(tex: str | Path, pdf: str | Path, latex_log: str | Path | None = None) -> Path:
    """latexmk -pdf ``tex`` in a fresh temporary folder beside ``pdf``, then move the PDF (and log) into place."""
    missing = [tool for tool in ("latexmk", "pdflatex", "bibtex") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"cannot build the paper: {', '.join(missing)} not found on PATH. Install TeX Live, "
                           f"e.g. on Debian/Ubuntu: sudo apt-get install {LATEX_PACKAGES}")
    tex, pdf = Path(tex).resolve(), Path(pdf)
    pdf.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=pdf.parent, prefix=".latexmk-") as tmp:
        cmd = ["latexmk", "-norc", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-cd",
               f"-outdir={Path(tmp).resolve()}", str(tex)]
        env = {**os.environ, "SOURCE_DATE_EPOCH": "0", "FORCE_SOURCE_DATE": "1"}  # reproducible PDF
        log.info("running %s", " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        log.info("latexmk output:\n%s", proc.stdout[-20000:] + proc.stderr[-5000:])
        tex_log = Path(tmp) / f"{tex.stem}.log"
        log_text = tex_log.read_text(errors="replace") if tex_log.exists() else ""
        if latex_log is not None:
            write_text(latex_log, log_text)
        built = Path(tmp) / f"{tex.stem}.pdf"
        if proc.returncode != 0 or not built.exists():
            errors = [line for line in log_text.splitlines() if line.startswith("!")]
            tail = "\n".join(log_text.splitlines()[-40:])
            raise RuntimeError(f"latexmk failed on {tex} (exit {proc.returncode}); LaTeX errors: {errors or 'none'}"
                               f"\nlast lines of {tex_log.name}:\n{tail}")
        atomic_write(pdf, lambda p: shutil.copyfile(built, p))
    return pdf
