# The README's two commands: `make demo` (the main job on the embedded default) and
# `make test` (the whole suite). Both run the set-up first; it is skipped while nothing
# it depends on has changed.
.PHONY: demo test setup lint bench

STAMP := .claimx/.setup-done

$(STAMP): pyproject.toml package.json package-lock.json scripts/setup.sh
	./scripts/setup.sh
	@mkdir -p .claimx && touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	claimx demo

test: $(STAMP)
	python3 -m pytest

lint: $(STAMP)
	ruff check . && mypy

bench: $(STAMP)
	python3 scripts/bench_anchor.py --n 10000
	python3 scripts/bench_adapters.py --seconds 1
