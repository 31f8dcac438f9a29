# Two commands: `make serve` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint setup system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, from the CPU build: anything that pulls torch in later would otherwise fetch a CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The Ray Serve and S3 extras (~490 MB) and the S3 test server: the tests need them (tests/test_ray_cluster.py,
# tests/test_s3_blobs.py), `make serve` does not.
RAY_STAMP := $(VENV)/.installed-ray-s3
$(RAY_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,ray,s3,s3-tests]'
	touch $(RAY_STAMP)

setup: $(STAMP)

serve: $(STAMP)
	$(BIN)/gouache serve

# The tests start a real PostgreSQL, and drive Debian's chromium through Playwright (never a browser download);
# install Debian's packages when they are missing (CI runs as root).
system-deps:
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing PostgreSQL for the store tests..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "PostgreSQL server binaries missing: PostgreSQL tests will be skipped (apt-get install postgresql)"; fi; \
	fi
	@if ! command -v ip >/dev/null 2>&1 && [ ! -x /usr/sbin/ip ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing iproute2 for the Ray cluster test (unshare -n, then ip link set lo up)..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null; \
	  else echo "ip (iproute2) missing: the Ray cluster test will be skipped"; fi; \
	fi
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing chromium for the playground tests..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      chromium fonts-liberation >/dev/null; \
	  else echo "chromium missing: playground browser tests will be skipped (apt-get install chromium)"; fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: lint system-deps $(RAY_STAMP)
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .gouache .pytest_cache .mypy_cache .ruff_cache
