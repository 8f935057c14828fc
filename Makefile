# The two commands of the README:  make labs  (run every lab)  and  make test  (run the test suite).
# Both create .venv and install what they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LABS ?=
MODE ?=
SUBMISSIONS ?= submissions

.PHONY: setup labs labs-smoke test test-fast lint strip bench browser-check release grade export validate clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

## Run every lab with papermill into build/ (full mode; COURSE_SMOKE=1 or MODE=--smoke for CI sizes)
labs: setup
	$(BIN)/python -m course_lib.labs $(MODE) $(LABS)

labs-smoke: setup
	$(BIN)/python -m course_lib.labs --smoke $(LABS)

## The whole test suite: lint, notebook hygiene, unit tests, every lab in smoke mode, grading end to end
test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not lab and not slow"

lint: setup
	$(BIN)/ruff check course_lib tests labs bench

strip: setup
	$(BIN)/nbstripout --keep-id labs/*.ipynb

## CPU benchmarks (figures go to bench/RESULTS.md by hand, with the machine); bench/gpu_*.py need a GPU
bench: setup
	for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

## A student's Run All in JupyterLab, in headless Chromium (needs Debian's chromium + chromium-driver); LABS="01 02"
browser-check: setup
	$(BIN)/python bench/browser_check.py $(or $(LABS),02)

## Instructors (see docs/INSTRUCTORS.md)
release: setup
	$(BIN)/python -m course_lib.grading release

grade: setup
	$(BIN)/python -m course_lib.grading grade $(SUBMISSIONS)

export: setup
	$(BIN)/python -m course_lib.grading export $(if $(MANUAL),--manual $(MANUAL))

validate: setup
	$(BIN)/python -m course_lib.grading validate $(NOTEBOOK)

clean:
	rm -rf build release
