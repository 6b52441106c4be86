"""The private Optuna names the sweep relies on (pyproject.toml pins Optuna to the minor
version these pass with): when an Optuna release moves one, this test names it."""

from __future__ import annotations

import importlib
import inspect

import optuna
import pytest
from optuna.storages import RDBStorage

PRIVATE_NAMES = [
    # module, attribute: where fersweep uses it
    ("optuna.storages._heartbeat", "BaseHeartbeat"),  # studies/proxy.py: the proxied storage
    ("optuna.storages._grpc.server", "make_server"),  # studies/proxy_server.py
]


@pytest.mark.parametrize("module, name", PRIVATE_NAMES)
def test_each_private_module_name_the_sweep_imports_is_where_it_was(module, name):
    found = importlib.import_module(module)
    assert hasattr(found, name), f"optuna {optuna.__version__} moved {module}.{name}"


def test_rdb_storage_still_answers_for_its_stale_trials():
    # studies/proxy_server.py asks the database storage behind the proxy for these.
    method = getattr(RDBStorage, "_get_stale_trial_ids", None)
    assert method is not None, f"optuna {optuna.__version__} moved RDBStorage._get_stale_trial_ids"
    assert list(inspect.signature(method).parameters) == ["self", "study_id"]


def test_a_trial_still_knows_its_storage_id():
    # studies/storage.heartbeat records a trial's heartbeat by this id.
    study = optuna.create_study()
    trial = study.ask()
    assert isinstance(trial._trial_id, int), f"optuna {optuna.__version__} moved Trial._trial_id"
