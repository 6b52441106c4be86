"""The Makefile's install step on an environment that is already there."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import PROJECT_ROOT


def test_an_install_into_a_working_environment_never_deletes_it(tmp_path):
    # A shared environment (make sweep VENV=/shared/.venv) older than pyproject.toml, as after a
    # `git pull`: the install recipe runs, but into the environment there.
    venv = tmp_path / "shared-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / "kept").write_text("jobs use this environment")
    recipe = subprocess.run(
        ["make", "--no-print-directory", "--dry-run", "--always-make", "install", f"VENV={venv}"],
        cwd=PROJECT_ROOT,
        env=outside_make(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "rm -rf" not in recipe and "rm -r " not in recipe
    first = recipe.splitlines()[0]
    assert first.startswith(f'{venv}/bin/python -c ""') and "-m venv" in first  # made if broken
    assert (venv / "kept").exists()


def outside_make() -> dict[str, str]:
    # Under `make test` the variables of the make above would reach this one (a sub-make prints
    # "Entering directory" and inherits its flags); the recipe is read as a user's shell sees it.
    return {k: v for k, v in os.environ.items() if k not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}}
