# make reproduce   set up, then run the whole study (tables, figures, paper/build/paper.pdf)
# make test        set up, then lint and run the test suite (what CI runs)
# Options: OFFLINE=1 reads datasets from ../shared/datasets (config/offline.yaml) instead of downloading;
#          RECORDS=1 trains nothing: every table, figure and the paper from the committed run records (with
#          config/offline.yaml: the committed KMNIST runs use its test-set holdout);
#          CORES=N (default: all); SNAKEMAKE_ARGS="..." passes extra arguments to snakemake.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
CONFIGS := $(if $(or $(OFFLINE),$(RECORDS)),--configfile config/config.yaml $(if $(or $(OFFLINE),$(RECORDS)),config/offline.yaml) $(if $(RECORDS),config/records.yaml),)
TEX_PACKAGES := latexmk texlive-latex-base texlive-latex-recommended texlive-latex-extra \
                texlive-fonts-recommended poppler-utils

.PHONY: setup system-packages reproduce test lint

$(BIN)/htsep: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,slurm]'
	touch $@

system-packages:
	@command -v latexmk >/dev/null && command -v pdfinfo >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "install TeX Live + latexmk + poppler: $(TEX_PACKAGES)"; exit 1; }; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(TEX_PACKAGES); }

setup: $(BIN)/htsep system-packages

reproduce: setup
	$(BIN)/snakemake --cores $(CORES) $(CONFIGS) $(SNAKEMAKE_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	SLURM_CONF=/dev/null $(BIN)/snakemake --lint --configfile config/test.yaml   # no cluster: the SLURM plugin skips its 9-s scontrol query

test: lint
	$(BIN)/pytest -ra --durations=20
