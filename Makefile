.PHONY: run test lint bench
run:
	./scripts/run.sh
test:
	./scripts/test.sh
lint:
	.venv/bin/ruff check src tests bench && .venv/bin/mypy
bench:
	.venv/bin/python -m bench.writer && .venv/bin/python -m bench.query
