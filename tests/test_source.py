"""Finding the data set: config root, FERSWEEP_DATA, local copies, or a download (tested offline)."""

import zipfile
from pathlib import Path

import pytest

from fersweep.data.source import resolve_data_root
from fersweep.errors import DataError
from tests.conftest import write_legend_dataset

URL = "file:///nowhere.zip"


def zip_like_github(dataset: Path, archive: Path) -> None:
    """The source repository's archive layout: <repo>-<ref>/data/legend.csv, <repo>-<ref>/images/."""
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(dataset / "legend.csv", "facial_expressions-master/data/legend.csv")
        for image in (dataset / "images").iterdir():
            bundle.write(image, f"facial_expressions-master/images/{image.name}")
        bundle.writestr("facial_expressions-master/README.md", "not data")


def test_an_existing_root_is_used_as_it_is(tiny_dataset):
    assert resolve_data_root(tiny_dataset, [], download=False, url=URL) == tiny_dataset.resolve()


def test_a_local_copy_is_used_when_the_root_is_empty(tmp_path, tiny_dataset):
    found = resolve_data_root(tmp_path / "empty", [tiny_dataset], download=False, url=URL)
    assert found == tiny_dataset.resolve()


def test_no_data_and_no_download_names_the_setting_and_the_variable(tmp_path):
    with pytest.raises(DataError, match="data.root=.*FERSWEEP_DATA"):
        resolve_data_root(tmp_path / "none", [], download=False, url=URL)


def test_the_data_set_is_downloaded_and_unpacked_from_an_archive_url(tmp_path, tiny_dataset):
    archive = tmp_path / "facial_expressions.zip"
    zip_like_github(tiny_dataset, archive)
    root = resolve_data_root(tmp_path / "fresh", [], download=True, url=archive.as_uri())
    assert (root / "legend.csv").read_bytes() == (tiny_dataset / "legend.csv").read_bytes()
    assert sorted(p.name for p in (root / "images").iterdir()) == sorted(
        p.name for p in (tiny_dataset / "images").iterdir()
    )
    assert not (root / "README.md").exists()


def test_an_archive_member_escaping_the_root_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("../../outside/legend.csv", "user.id,image,emotion\n")
    with pytest.raises(DataError, match="outside the data root"):
        resolve_data_root(tmp_path / "fresh", [], download=True, url=archive.as_uri())
    assert not (tmp_path.parent / "outside").exists()


def test_an_unreachable_url_says_how_to_use_a_local_copy(tmp_path):
    with pytest.raises(DataError, match="FERSWEEP_DATA"):
        resolve_data_root(tmp_path / "x", [], download=True, url=(tmp_path / "no.zip").as_uri())


def test_fersweep_data_overrides_the_configured_root(compose, monkeypatch, tiny_dataset):
    monkeypatch.setenv("FERSWEEP_DATA", str(tiny_dataset))
    assert compose().data.root == str(tiny_dataset)


def test_generated_dataset_helper_covers_every_emotion(tmp_path):
    rows = write_legend_dataset(tmp_path, people_per_emotion=1, images_per_person=1)
    assert len({emotion for _, emotion in rows}) == 8
