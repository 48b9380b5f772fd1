# The README's two commands: `make demo` (the main job on the embedded default) and
# `make test` (the whole suite). Both run the set-up first (scripts/setup.sh: a project
# virtual environment in .venv, so Debian's own python3 works as well as a pyenv one);
# it is skipped while nothing it depends on has changed.
.PHONY: demo test quick setup lint bench

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done

$(STAMP): pyproject.toml package.json package-lock.json scripts/setup.sh
	./scripts/setup.sh
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/claimx demo

test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile

quick: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/mypy && $(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python scripts/bench_anchor.py --n 10000
	$(BIN)/python scripts/bench_adapters.py --seconds 1
