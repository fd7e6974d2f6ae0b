# Two commands: `make demo` and `make test`. Each creates .venv and installs the project when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= results

.PHONY: demo test bench docs clean venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev,fl,docs]"
	touch $(STAMP)

# the test suite also exercises the optional Ray backend and the Flower integration, so CI
# installs those extras too
RAY_STAMP := $(VENV)/.installed-ray-flower
$(RAY_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,fl,docs,ray,flower]"
	touch $(RAY_STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/secagg demo --out $(OUT)

# type-check first (config: [tool.mypy] in pyproject.toml; ~10 s cold, under 1 s cached)
test: $(RAY_STAMP)
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q -m "not slow" -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks -q --benchmark-only --benchmark-autosave --benchmark-storage=.benchmarks --benchmark-columns=min,median,mean,rounds

docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) site .benchmarks .pytest_cache .mypy_cache results
