# The two commands a new user needs (see README.md):
#   make demo   installs skuforge with the local model and enriches the sample catalog
#   make test   installs everything and runs the test suite (CI runs exactly this)

.PHONY: demo test setup lint bench

demo:
	scripts/setup.sh local
	.venv/bin/skuforge run examples/catalog.xlsx --recipe attributes --model local:qwen2.5-0.5b --out enriched.xlsx

test:
	scripts/setup.sh all,ray,dev
	$(MAKE) lint
	.venv/bin/python -m pytest -q

lint:
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy src

bench:
	.venv/bin/python -m bench
