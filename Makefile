# The two set-up commands of the README: `make test` and `make demo`. Both start from a fresh clone:
# they create .venv, install the pinned torch/torchvision first (never let pip resolve torch unpinned),
# then this package with its extras.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# The dev environment's torch: installed first and kept as a constraint for every later install.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
CONSTRAINTS := $(VENV)/constraints.txt

# The supported transformers range is written once, in pyproject.toml; CI tests both of its ends. The venv gets the
# newest release in the range (the whole suite runs on it); the oldest (the lower bound) is a --no-deps overlay put
# first on PYTHONPATH, far cheaper than a second venv, for the tests that guard losslessness.
TRANSFORMERS_REQUIREMENT := $(shell sed -n 's/^ *"\(transformers[<>=!~][^"]*\)".*/\1/p' pyproject.toml)
OLDEST_TRANSFORMERS := $(shell sed -n 's/^ *"transformers>=\([0-9.]*\)[,"].*/\1/p' pyproject.toml)
OLDEST := .tf-$(OLDEST_TRANSFORMERS)
OLDEST_STAMP := $(OLDEST)/.installed
OLDEST_TESTS := tests/test_lossless.py tests/test_composition.py tests/test_fuzz.py tests/test_versions.py
ifeq ($(strip $(TRANSFORMERS_REQUIREMENT)),)
$(error no "transformers>=..." requirement found in pyproject.toml)
endif
ifeq ($(strip $(OLDEST_TRANSFORMERS)),)
$(error the transformers requirement in pyproject.toml has no ">=" lower bound)
endif

.PHONY: venv oldest test demo lint fuzz testbed bench build clean

venv: $(STAMP)

# -U on the transformers requirement: the newest release of the range, also when the venv holds an older one.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	printf '%s\n' $(TORCH_PINS) > $(CONSTRAINTS)
	$(PIP) install --quiet -c $(CONSTRAINTS) $(TORCH_PINS)
	$(PIP) install --quiet -c $(CONSTRAINTS) -U -e ".[test,video,bench]" "$(TRANSFORMERS_REQUIREMENT)"
	touch $(STAMP)

oldest: $(OLDEST_STAMP)

# --no-deps: the venv's packages must satisfy the old release's requirements too (checked).
$(OLDEST_STAMP): $(STAMP)
	rm -rf $(OLDEST)
	$(PIP) install --quiet --no-deps --target $(OLDEST) "transformers==$(OLDEST_TRANSFORMERS)"
	PYTHONPATH=$(OLDEST) $(PY) .ci/check_requirements.py transformers==$(OLDEST_TRANSFORMERS)
	touch $(OLDEST_STAMP)

lint: venv
	$(VENV)/bin/ruff check .

# The whole suite on the venv's (newest) transformers and OLDEST_TESTS on the oldest, side by side.
test: venv lint oldest
	$(PY) .ci/check_requirements.py "$(TRANSFORMERS_REQUIREMENT)"
	sh .ci/test_both_ends.sh $(PY) $(OLDEST) $(OLDEST_TESTS)

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
	rm -rf $(VENV) .tf-* dist build src/*.egg-info
