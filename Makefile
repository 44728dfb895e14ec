# Everything a newcomer needs: `make demo`, `make test`. Each target creates the venv first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install test demo docs bench results science clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@echo "make install: a virtual environment in $(VENV)/ with kinmerge and its dependencies"
	@echo "  (CPU torch, transformers, optuna, ray, pytest: about 1.5 GB; a few minutes, once, mostly downloads)"
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@echo "  1/2 torch (CPU build, pinned in constraints.txt so nothing pulls a multi-GB CUDA one)"
	$(BIN)/python -m pip install -q -c constraints.txt torch
	@echo "  2/2 kinmerge -e '.[test,evolve]' and the rest"
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,evolve,docs]'
	touch $(STAMP)
	@echo "make install: done ($(BIN)/kinmerge)"

# the suite is single-threaded (tests/conftest.py sets it too, for a bare `pytest`)
test: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest

demo: install
	$(BIN)/kinmerge demo --out runs/demo

# The docs site (docs/, mkdocs.yml): regenerate the reference pages from the code, then build
# into runs/site/ with warnings as errors (the `docs` extra's pinned mkdocs comes with install).
docs: install
	$(BIN)/python -m tools.docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir runs/site

# Rerun the README's measured experiments on the shipped zoo (~15-30 min on 2 cores) and
# rewrite its tables and the examples' measured comments from their summary.json files.
results: install
	rm -rf runs/results
	$(BIN)/python -m tools.results run runs/results

# The Breeding section's kin-family experiment: three seeds x (greedy, exploration, predicted
# gain); trains the kin zoo of each seed on first use (5-8 min each on 2 cores), then ~10 min
science: install
	$(BIN)/python benchmarks/breed_science.py --write-docs

# both tools as users run them: no thread variable exported (see benchmarks/bench_merge.py)
bench: install
	$(BIN)/python benchmarks/bench_merge.py --params 0.27B,0.84B --methods linear,ties

clean:
	rm -rf $(VENV) runs .pytest_cache
