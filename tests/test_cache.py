"""Preprocessed arrays are cached on disk: a second run does not decode the JPEGs again."""

from pathlib import Path

import numpy as np
import pytest
import torch

import fersweep.data.cache as cache_module
import fersweep.data.datamodule as datamodule_module
from fersweep.config.compose import build
from fersweep.data.cache import decode_pool, fingerprint, load_images
from fersweep.data.legend import read_legend
from fersweep.data.preprocess import Preprocessor


def load(root: Path, cache: Path, size: int = 32):
    records, _ = read_legend(root / "legend.csv", root / "images")
    prep = Preprocessor(channels=1, size=size, fit="pad", max_pixels=10**7, min_side=8, face=None)
    return load_images(
        records,
        root / "images",
        prep,
        cache,
        fingerprint(root / "legend.csv", root / "images"),
        workers=2,
    )


def test_the_second_load_reads_the_cache_and_decodes_nothing(tiny_dataset, tmp_path, monkeypatch):
    first, _ = load(tiny_dataset, tmp_path / "cache")
    monkeypatch.setattr(Preprocessor, "load", lambda *a: pytest.fail("decoded a JPEG again"))
    second, _ = load(tiny_dataset, tmp_path / "cache")
    assert np.array_equal(first.images, second.images)
    assert first.records == second.records


def test_other_preprocessing_settings_get_their_own_cache_entry(tiny_dataset, tmp_path):
    small, _ = load(tiny_dataset, tmp_path / "cache", size=32)
    large, _ = load(tiny_dataset, tmp_path / "cache", size=48)
    assert small.images.shape[1:] == (32, 32, 1) and large.images.shape[1:] == (48, 48, 1)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_changing_the_data_changes_its_fingerprint(tiny_dataset):
    before = fingerprint(tiny_dataset / "legend.csv", tiny_dataset / "images")
    (tiny_dataset / "images" / "New_Person_0001.jpg").write_bytes(b"x")
    assert fingerprint(tiny_dataset / "legend.csv", tiny_dataset / "images") != before


def test_unreadable_images_are_skipped_and_counted_in_the_report(tiny_dataset, tmp_path):
    victim = sorted((tiny_dataset / "images").iterdir())[0]
    victim.write_bytes(b"")
    image_set, report = load(tiny_dataset, tmp_path / "cache")
    assert victim.name not in image_set.files
    assert (
        report.counts["unreadable_image"] == 1
        and victim.name in report.examples["unreadable_image"][0]
    )
    _, cached_report = load(tiny_dataset, tmp_path / "cache")
    assert cached_report.counts == report.counts


def test_the_split_is_cached_too_and_changes_with_its_settings(compose, tiny_dataset, monkeypatch):
    def datamodule(*overrides: str):
        cfg = compose(f"data.root={tiny_dataset}", "data.preprocess.size=32", *overrides)
        module = build(cfg.data)
        module.setup()
        return module

    first = datamodule()
    monkeypatch.setattr(
        datamodule_module, "split_assignments", lambda *a, **k: pytest.fail("split again")
    )
    assert np.array_equal(datamodule().assignment, first.assignment)
    with pytest.raises(pytest.fail.Exception, match="split again"):
        datamodule("data.split.seed=7")  # other settings: computed, not read from the cache


def test_an_interrupted_preprocessing_resumes_from_the_parts_it_saved(
    tiny_dataset, tmp_path, monkeypatch
):
    monkeypatch.setattr(cache_module, "PART_SIZE", 10)  # 128 images: 13 parts
    original_load = Preprocessor.load
    decoded: list[str] = []

    def load_until_crash(self, path):
        if len(decoded) == 25:
            raise KeyboardInterrupt  # the run is stopped in its third part
        decoded.append(path.name)
        return original_load(self, path)

    monkeypatch.setattr(Preprocessor, "load", load_until_crash)
    with pytest.raises(KeyboardInterrupt):
        load(tiny_dataset, tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "parts").glob("*.npz"))) == 2  # parts 1 and 2 kept

    decoded.clear()
    monkeypatch.setattr(
        Preprocessor,
        "load",
        lambda self, path: decoded.append(path.name) or original_load(self, path),
    )
    resumed, _ = load(tiny_dataset, tmp_path / "cache")
    assert len(decoded) == 128 - 20  # the saved parts were not decoded again
    monkeypatch.setattr(Preprocessor, "load", original_load)
    whole, _ = load(tiny_dataset, tmp_path / "fresh")
    assert np.array_equal(resumed.images, whole.images) and resumed.records == whole.records
    assert not list((tmp_path / "cache" / "parts").glob("*.npz"))  # joined into one file


def test_decode_threads_share_torchs_threads_while_they_run_and_give_them_back():
    before = torch.get_num_threads()
    with decode_pool(2) as pool:
        inside = pool.submit(torch.get_num_threads).result()
    assert inside == max(1, before // 2)
    assert torch.get_num_threads() == before
