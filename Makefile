# imsim: the two commands are `make demo` (the handbook scenario end to end) and
# `make test` (the whole suite). Both install what they need into .venv/ first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
EXTRAS := dev,lab,notebooks
PYTEST_ARGS ?=

.PHONY: venv native demo test lint typecheck unit lab clean

venv: $(VENV)/.installed native

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "imsim: installing pyproject.toml's Python packages (extras $(EXTRAS), pjsua2" \
	  "included) into $(VENV)/: a few minutes, quiet until done"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

# The simulator's hot path compiled with mypyc (imsim/_hotpath.py): same results as
# the pure-Python sources, which run instead when compiling is not possible here.
native: $(VENV)/.installed
	@$(BIN)/python -m imsim.native status | grep -q ': compiled' || echo "imsim: compiling" \
	  "the simulator's hot path with mypyc (imsim/_hotpath.py): 1-3 minutes, no output"
	$(BIN)/python -m imsim.native build --if-needed || \
	  echo "imsim: the hot path could not be compiled; pure Python runs (same results, slower)"

# The handbook scenario end to end: validate it, check the nine steps (checklist,
# diagnosis, test messages through the model), simulate it, then play it live through
# the embedded lab stack (Kamailio + billing service + pjsua2 clients) and compare.
# The live part needs Kamailio and sipp: when missing and run as root, `lab run` says
# which Debian packages it installs and why, runs `apt-get update`, then installs them.
demo: venv
	@echo "imsim demo 1/4: validate the handbook scenario"
	$(BIN)/imsim validate scenarios/handbook.yaml
	@echo "imsim demo 2/4: check its nine setup steps"
	$(BIN)/imsim check scenarios/handbook.yaml
	@echo "imsim demo 3/4: simulate it"
	$(BIN)/imsim run scenarios/handbook.yaml --out runs/handbook/model
	@echo "imsim demo 4/4: play it live (Kamailio + billing service + pjsua2) and compare"
	$(BIN)/imsim lab run scenarios/handbook.yaml --out runs/handbook/lab; \
	  status=$$?; $(BIN)/imsim lab down; exit $$status

# The trainer app in a browser: Voila on 127.0.0.1, the URL printed, Ctrl-C stops it.
# (`imsim app planner` serves the planner the same way.)
.PHONY: train
train: venv
	$(BIN)/imsim app trainer

lint: venv
	$(BIN)/ruff check imsim lab tests benchmarks

typecheck: venv
	$(BIN)/mypy imsim

unit: venv
	$(BIN)/pytest -m "not lab" $(PYTEST_ARGS)

# Only the live tests (real Kamailio, sipp and pjsua2 on 127.0.0.1).
lab: venv
	$(BIN)/pytest -m lab tests/lab $(PYTEST_ARGS)

test: lint typecheck
	$(BIN)/pytest --nbmake tests notebooks $(PYTEST_ARGS)

clean:
	-$(BIN)/python -m imsim.native clean
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache runs lab/run build
