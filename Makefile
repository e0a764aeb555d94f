# README's two commands: `make demo` and `make test`. Each creates .venv when missing and
# installs the project into it (editable) before running.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.privfed-installed
EXTRAS ?= dev,flower,simulation

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || bash scripts/check_disk.sh .
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/privfed compare

test: $(STAMP)
	-@bash scripts/ensure_chromium.sh
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/engine_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache
