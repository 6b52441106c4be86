"""Preprocessed arrays on disk, keyed by the preprocessing settings and the data set's fingerprint."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from fersweep.data.legend import DataReport, Record
from fersweep.data.preprocess import PREPROCESS_VERSION, Prepared, Preprocessor
from fersweep.errors import ImageError

log = logging.getLogger(__name__)
PART_SIZE = 2048  # images per cache part: an interrupted run loses at most one part's work


@dataclass
class ImageSet:
    """Preprocessed images (N x H x W x C, uint8) with their records, in the same order, and
    where each was cut from: `boxes` (N x 4: x, y, width, height), `angles` (degrees the eyes
    were turned) and `outcomes` (what the face step did)."""

    images: np.ndarray
    records: list[Record]
    boxes: np.ndarray
    angles: np.ndarray
    outcomes: np.ndarray

    def take(self, index: np.ndarray) -> ImageSet:
        return ImageSet(
            self.images[index],
            [self.records[i] for i in index],
            self.boxes[index],
            self.angles[index],
            self.outcomes[index],
        )

    @cached_property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.records], dtype=np.int64)

    @cached_property
    def identities(self) -> np.ndarray:
        return np.array([r.identity for r in self.records])

    @property
    def files(self) -> np.ndarray:
        return np.array([r.file for r in self.records])


def fingerprint(legend_path: Path | None, images_dir: Path) -> str:
    """A hash of the labels file and every image's name and size: cheap, and changes with the data."""
    digest = hashlib.sha256()
    if legend_path is not None:
        digest.update(legend_path.read_bytes())
    with os.scandir(images_dir) as entries:
        listing = sorted(f"{e.name}\0{e.stat().st_size}\n" for e in entries if e.is_file())
    digest.update("".join(listing).encode())
    return digest.hexdigest()[:16]


def load_images(
    records: Sequence[Record],
    images_dir: Path,
    preprocessor: Preprocessor,
    cache_dir: Path | None,
    data_fingerprint: str,
    workers: int,
) -> tuple[ImageSet, DataReport]:
    """Preprocess every record's image, or read the result from the cache when it is there.

    Images that cannot be used are left out and counted in the returned report. With a cache,
    the work is saved in parts of `PART_SIZE` images as it goes, so a run stopped halfway
    resumes where it stopped; the parts become one file once all are done.
    """
    if cache_dir is None:
        return _decode_all(records, images_dir, preprocessor, workers)
    path = cache_dir / f"{cache_key(preprocessor, data_fingerprint, records)}.npz"
    if cached := _read_if_usable(path, records):
        log.info("preprocessed images from cache %s", path)
        return cached
    parts, done = [], []
    starts = range(0, len(records), PART_SIZE)
    for number, start in enumerate(starts, 1):
        chunk = records[start : start + PART_SIZE]
        part_path = cache_dir / "parts" / f"{cache_key(preprocessor, data_fingerprint, chunk)}.npz"
        part = _read_if_usable(part_path, chunk)
        if part is None:
            label = f"preprocess {number}/{len(starts)}"
            part = _decode_all(chunk, images_dir, preprocessor, workers, label)
            _write_cache(part_path, *part)
        parts.append(part)
        done.append(part_path)
    image_set, report = _join(parts, preprocessor)
    _write_cache(path, image_set, report)
    for part_path in done:
        part_path.unlink(missing_ok=True)
    return image_set, report


def _read_if_usable(path: Path, records: Sequence[Record]) -> tuple[ImageSet, DataReport] | None:
    if not path.is_file():
        return None
    try:
        return _read_cache(path, records)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as error:
        # np.load refuses pickled objects (allow_pickle=False): such a file is never run.
        log.warning("ignoring unusable cache file %s (%s); preprocessing again", path, error)
        return None


def _join(
    parts: Sequence[tuple[ImageSet, DataReport]], preprocessor: Preprocessor
) -> tuple[ImageSet, DataReport]:
    report = DataReport()
    for _, part_report in parts:
        report.merge(part_report)
    if not parts:
        return _image_set([], [], preprocessor), report
    sets = [image_set for image_set, _ in parts]
    joined = ImageSet(
        np.concatenate([s.images for s in sets]),
        [r for s in sets for r in s.records],
        *(np.concatenate([getattr(s, name) for s in sets]) for name in FACE_FIELDS),
    )
    return joined, report


FACE_FIELDS = ("boxes", "angles", "outcomes")


def _image_set(
    records: Sequence[Record], prepared: Sequence[Prepared], preprocessor: Preprocessor
) -> ImageSet:
    if not prepared:
        empty = np.zeros((0, *preprocessor.shape), np.uint8)
        no_boxes, no_angles = np.zeros((0, 4), np.int32), np.zeros(0, np.float32)
        return ImageSet(empty, [], no_boxes, no_angles, np.array([], str))
    return ImageSet(
        np.stack([p.array for p in prepared]),
        list(records),
        np.array([p.box.xywh for p in prepared], dtype=np.int32),
        np.array([p.angle for p in prepared], dtype=np.float32),
        np.array([p.outcome for p in prepared], dtype=str),
    )


def cached_array(path: Path | None, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """`compute()`, saved to `path` (a .npy file) the first time and read from it afterwards."""
    if path and path.is_file():
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            log.warning("ignoring unusable cache file %s (%s); computing again", path, error)
    array = compute()
    if path:
        _write_atomically(path, lambda partial: np.save(partial, array, allow_pickle=False))
    return array


def _write_atomically(path: Path, save: Callable[[Path], object]) -> None:
    """`save` writes a temporary file beside `path`, which then replaces `path` in one step, so
    a concurrent reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp{path.suffix}")
    save(partial)
    os.replace(partial, path)


def content_key(*parts: np.ndarray | dict) -> str:
    """A short hash of arrays (by their bytes) and settings (by their JSON)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(f"{part.dtype}{part.shape}".encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:20]


def cache_key(preprocessor: Preprocessor, data_fingerprint: str, records: Sequence[Record]) -> str:
    entries = np.array([f"{r.file}\0{r.emotion}\0{r.identity}" for r in records], dtype=str)
    settings = {**preprocessor.settings(), "version": PREPROCESS_VERSION}
    return content_key(settings, {"data": data_fingerprint}, entries)


def _decode_all(
    records: Sequence[Record],
    images_dir: Path,
    preprocessor: Preprocessor,
    workers: int,
    label: str = "preprocess",
) -> tuple[ImageSet, DataReport]:
    def decode(record: Record) -> Prepared | str:
        try:
            return preprocessor.load(images_dir / record.file)
        except ImageError as error:
            return str(error)

    report = DataReport()
    kept, prepared = [], []
    # OpenCV and torch release the GIL while decoding and detecting, so threads scale across cores.
    with decode_pool(workers) as pool:
        results = pool.map(decode, records, chunksize=64)
        for record, result in tqdm(zip(records, results), total=len(records), desc=label):
            if isinstance(result, str):
                log.warning("skipping unreadable image: %s", result)
                report.add("unreadable_image", result)
                continue
            kept.append(record)
            prepared.append(result)
            report.steps.update([result.outcome, *result.notes])
    return _image_set(kept, prepared, preprocessor), report


@contextmanager
def decode_pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    """Threads that each preprocess one picture at a time, torch's threads divided among them
    while they run: each thread's MTCNN asking for every core oversubscribes them (two decode
    threads on 2 cores: 58 against 82 images/s, results/2026-12-06-mtcnn-batched)."""
    workers = max(1, workers)
    with (
        torch_threads(max(1, torch.get_num_threads() // workers)),
        ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        yield pool


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to `count` for a while, then given back."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _write_cache(path: Path, image_set: ImageSet, report: DataReport) -> None:
    _write_atomically(
        path,
        lambda partial: np.savez(
            partial,
            images=image_set.images,
            files=image_set.files,
            **{name: getattr(image_set, name) for name in FACE_FIELDS},
            report=np.array(json.dumps(report.as_dict())),
        ),
    )


def _read_cache(path: Path, records: Sequence[Record]) -> tuple[ImageSet, DataReport]:
    with np.load(path, allow_pickle=False) as stored:
        images, files = stored["images"], stored["files"].tolist()
        faces = [stored[name] for name in FACE_FIELDS]
        saved = json.loads(str(stored["report"]))
    by_file = {record.file: record for record in records}
    return ImageSet(images, [by_file[name] for name in files], *faces), DataReport.from_dict(saved)
