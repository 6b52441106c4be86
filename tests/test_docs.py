"""The front door and the documentation: the README stays short, the site builds with every
link and anchor found, and every `results/` folder the docs cite exists."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT

DOCS = [
    PROJECT_ROOT / "README.md",
    PROJECT_ROOT / "CHANGELOG.md",
    *(PROJECT_ROOT / "docs").glob("*.md"),
]


def test_the_readme_is_at_most_300_lines():
    assert len((PROJECT_ROOT / "README.md").read_text().splitlines()) <= 300


def test_the_documentation_site_builds_strictly(tmp_path):
    mkdocs = Path(sys.executable).parent / "mkdocs"
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=PROJECT_ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "results" / "index.html").is_file()


def test_every_results_folder_the_docs_cite_exists():
    cited = {
        (page.name, folder)
        for page in DOCS
        for folder in re.findall(r"results/(\d{4}-\d{2}-\d{2}-[A-Za-z0-9_-]+)", page.read_text())
    }
    assert cited, "the docs cite their results"
    missing = [
        (page, folder) for page, folder in cited if not (PROJECT_ROOT / "results" / folder).is_dir()
    ]
    assert missing == []


def test_no_text_for_users_speaks_of_issue_numbers():
    pages = {page.name: page.read_text() for page in DOCS}
    assert {name for name, text in pages.items() if re.search(r"\bissue \d+", text)} == set()
