# The two set-up commands in the README: `make demo` and `make test`.
# Both create .venv in the repository root when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS ?= train,edge,reports,review,fleet,dev

.PHONY: demo test lint venv clean

$(BIN)/trapcount: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

venv: $(BIN)/trapcount

demo: venv
	$(BIN)/python -m edge_agent.demo

test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache

# Not part of `make test` (it takes minutes): the trap path on an emulated arm64 Debian
# bookworm, its counts compared with this machine's (docs/deploy.md, "Checking arm64
# without a Pi"). As root: sudo make pi-check.
.PHONY: pi-check
pi-check: venv
	deploy/pi-check.sh --host-venv $(VENV)
