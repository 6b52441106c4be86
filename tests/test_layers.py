"""The package's layering, as pyproject.toml writes it down: import-linter's contracts hold
(tasks on top, then serving, then the tracking adapter, then the concerns), no module imports
its way back into itself, and no module outgrows one reading."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

from tests.conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "src" / "fersweep"
MAX_LINES = 400


def test_the_import_contracts_are_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "broken" in result.stdout and ", 0 broken" in result.stdout


def test_no_module_imports_its_way_back_to_itself():
    graph = grimp.build_graph("fersweep")
    cycles = [
        (module, importer)
        for module in graph.modules
        for importer in graph.find_modules_that_directly_import(module)
        if graph.chain_exists(importer=module, imported=importer)
    ]
    assert cycles == []


def test_tracking_imports_no_task_and_not_serving():
    graph = grimp.build_graph("fersweep")
    for upper in ("fersweep.tasks", "fersweep.serving"):
        assert not graph.chain_exists(
            importer="fersweep.tracking", imported=upper, as_packages=True
        ), f"fersweep.tracking reaches {upper}"


def test_no_module_is_over_400_lines():
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
