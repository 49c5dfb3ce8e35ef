# The README's two commands are `make demo` and `make test`; each sets up what it needs first (idempotent).
.PHONY: setup demo test bench check

setup:
	bash scripts/setup.sh

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

bench:
	bash scripts/run.sh python bench/run_all.py

check:
	bash scripts/setup.sh --check
