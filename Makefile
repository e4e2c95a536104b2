# The two commands: `make run` (the product, embedded defaults) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test gates lint install install-dev browser node-packages clean

run: $(VENV)/.installed
	$(PY) manage.py run_embedded

# Two test processes (pytest-xdist): CI has 2 cores. Each gets its own data dir, test database and
# Redis databases (tests/settings.py); PYTEST_WORKERS=0 runs in one process. --dist loadgroup keeps
# tests marked xdist_group (the fault suites, which share one Celery worker and its proxies) on one process.
PYTEST_WORKERS ?= 2
test: $(VENV)/.installed-dev browser node-packages
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# What CI checks before the tests (.ci/gates): ruff check, ruff format --check, makemigrations --check.
gates: $(VENV)/.installed-dev
	PYTHON=$(PY) .ci/gates

lint: gates

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(VENV)/bin/python
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PIP) install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

# Debian's Chromium for tests/browser (Playwright drives it; it never downloads a browser of its own).
# Installed when missing and we are root with apt-get; otherwise says what to install, and the
# browser test fails with the same advice rather than passing without a browser.
CHROMIUM_PATH ?= /usr/bin/chromium
browser:
	@if [ -x "$(CHROMIUM_PATH)" ]; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian's chromium for the browser tests (tests/browser)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; } || \
	    echo "make browser: apt-get could not install chromium; the browser tests will fail until it is installed."; \
	else \
	  echo "make browser: the browser tests need Chromium at $(CHROMIUM_PATH). Install Debian's 'chromium'"; \
	  echo "  package (sudo apt-get install chromium) or set CHROMIUM_PATH to a Chromium binary."; \
	fi

# The npm packages of the generated TypeScript client's test (tests/clients/package-lock.json:
# openapi-typescript, openapi-fetch, typescript), installed with `npm ci` when the lock file is newer
# than what node_modules holds. Without Node/npm it says what to install, and that test fails under CI.
CLIENTS_DIR := tests/clients
node-packages: $(CLIENTS_DIR)/node_modules/.package-lock.json

$(CLIENTS_DIR)/node_modules/.package-lock.json: $(CLIENTS_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  echo "Installing the npm packages of $(CLIENTS_DIR) (npm ci)"; \
	  npm ci --prefix $(CLIENTS_DIR) --no-audit --no-fund --loglevel=error && touch $@; \
	else \
	  echo "make node-packages: the TypeScript client test (tests/clients) needs Node.js 20+ and npm."; \
	  echo "  Install Debian's 'nodejs' and 'npm' packages (sudo apt-get install nodejs npm), then run make test."; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache $(CLIENTS_DIR)/node_modules
