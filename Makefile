# The two set-up commands of the README: `make test` and `make demo`. Both start from a fresh clone:
# they create .venv, install the pinned torch/torchvision first (never let pip resolve torch unpinned),
# then this package with its extras.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: venv test demo lint fuzz testbed bench build clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PIP) install --quiet -e ".[test,video,bench]"
	touch $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .

test: venv lint
	$(PY) -m pytest -q tests

demo: venv
	$(PY) examples/demo.py

fuzz: venv
	SPECVLM_FUZZ_EXAMPLES=2000 $(PY) -m pytest -q tests -k fuzz

testbed: venv
	$(PY) -m specvlm_hf.testbed.train --out weights --ckpt .testbed_ckpt

bench: venv
	$(PY) -m specvlm_hf.bench --out benchmarks --analysis benchmarks/analysis.md

# sdist + wheel in dist/ (MANIFEST.in: the sdist carries the tests, examples, docs and weights), checked by twine.
build: venv
	$(PIP) install --quiet build twine
	rm -rf dist
	$(PY) -m build
	$(PY) -m twine check --strict dist/*

clean:
	rm -rf $(VENV) dist build src/*.egg-info
