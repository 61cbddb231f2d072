# Two commands do everything: `make run` (set up + whole pipeline + UI) and `make test` (set up + all tests).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast setup lint bench clean browser

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 not found as '$(PYTHON)'; run: make PYTHON=/path/to/python3.11 ..."; exit 1; }
	@command -v java >/dev/null || { echo "Java 17 is required by Spark: install a JDK 17 and put java on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# uv installs the same pinned set as pip (constraints.txt pins every package, uv included) in ~70 s
	# against pip's ~120 s here, bytecode compiled as pip does it (PYTHONDONTWRITEBYTECODE would otherwise
	# have every process compile its imports again).
	$(BIN)/python -m pip install --quiet -c constraints.txt uv
	$(BIN)/python -m uv pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt -e ".[dev]"
	# Our own modules' bytecode, once: the installer compiles site-packages but not an editable install; where
	# PYTHONDONTWRITEBYTECODE is set (CI sandboxes) every process would compile them again (~0.5-1 s for
	# the code location, which each Dagster run process, code server and CLI command loads).
	$(BIN)/python -m compileall -q -x '/(\.venv[^/]*|\.git|data|dbt_project)/' . >/dev/null
	# Side by side, each mostly on one core: the dbt project parsed for the code location (dbt parse, ~5-8 s;
	# not while `make run` waits for the UI), and Spark's classes in one archive for the driver JVM (~20-40 s
	# once: every later Spark start saves ~4 s).
	$(BIN)/python -c "import netflix_assets.definitions" >/dev/null & parse=$$!; \
	$(BIN)/netflix-lambda spark-classes --force; classes=$$?; \
	wait $$parse && test $$classes -eq 0
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/netflix-lambda up

# The browser tests drive Debian's Chromium (Playwright cannot download a browser here). Installed with apt
# when missing; if that fails, `make test` stops here, saying so (deselect them with -m "not browser").
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
	  echo "Installing Chromium for the browser tests: apt-get install --no-install-recommends chromium"; \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	      chromium </dev/null; } || { echo "Chromium could not be installed (need root and apt). Install \
	Debian's chromium, or run the tests without the browser ones: .venv/bin/python -m pytest -m 'not browser'"; \
	    exit 1; }; }
	@test -x $(CHROMIUM) || { echo "$(CHROMIUM) still missing after apt-get install chromium"; exit 1; }

# Three test files at a time (pytest-xdist, one file per worker so module fixtures are built once): with
# two the cores idled 8 % of the time, mostly while end-to-end files wait (pytest 1436 s against 2059 s,
# with C1-only test JVMs). The load that makes a Spark Python worker miss its 10 s to connect back no longer
# fails the stream: it restarts its query (streaming/worker_restart.py). docs/benchmarks.md, "Where the
# suite's CPU goes". xdist's own file order: longest first measured no better.
PYTEST := $(BIN)/python -m pytest -n 3 --dist loadfile
test: $(STAMP) browser
	$(PYTEST) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf data .pytest_cache dbt_project/target dbt_project/logs
