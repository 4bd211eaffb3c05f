# The two commands of the README: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup run test docs lint typecheck unit clean

$(BIN)/trident: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q --upgrade pip
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[export,postgres,test]'
	touch $@

setup: $(BIN)/trident  ## app venv + the local Triton runtime
	$(BIN)/trident triton --install-only

run: setup  ## Triton + the API on http://127.0.0.1:8080 (exports a demo model on first run)
	$(BIN)/trident run

lint: $(BIN)/trident
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/trident
	$(BIN)/mypy

unit: $(BIN)/trident  ## the tests that need no Triton
	$(BIN)/pytest -m "not integration"

# The documentation is built after the tests, from the screenshots this run's browser tests took
# (named by the run: DOCS_SCREENS_RUN), and checked to hold exactly those (scripts/check_docs_screens.py).
test: setup lint typecheck  ## everything CI runs (two workers, each on its own stack: tests/helpers/scheduling.py)
	run=$$(date +%s)-$$$$ && \
	DOCS_SCREENS_RUN=$$run $(BIN)/pytest -n 2 && \
	$(MKDOCS_BUILD) && \
	$(BIN)/python scripts/check_docs_screens.py --run $$run

# every warning an error: a broken link or anchor, a page missing from the nav (mkdocs.yml's validation)
MKDOCS_BUILD = NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

docs: $(BIN)/trident  ## the documentation site in site/, from the screenshots of the last browser-test run
	$(MKDOCS_BUILD)

clean:
	rm -rf $(VENV) .trident .mypy_cache .ruff_cache .pytest_cache site docs/assets/screens
