# Everything a newcomer needs: `make demo`, `make test`. Each target creates the venv first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install test demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned, so nothing pulls a multi-GB CUDA build
	$(BIN)/python -m pip install -q -c constraints.txt torch
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,evolve]'
	touch $(STAMP)

# the suite is single-threaded (tests/conftest.py sets it too, for a bare `pytest`)
test: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest

demo: install
	$(BIN)/kinmerge demo --out runs/demo

# both tools as users run them: no thread variable exported (see benchmarks/bench_merge.py)
bench: install
	$(BIN)/python benchmarks/bench_merge.py --params 0.27B,0.84B --methods linear,ties

clean:
	rm -rf $(VENV) runs .pytest_cache
