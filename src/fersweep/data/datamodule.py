"""The LightningDataModule: read, clean, preprocess (cached), split, balance and serve batches."""

from __future__ import annotations

import logging
from dataclasses import asdict
from functools import cached_property
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from fersweep import EMOTIONS
from fersweep.data.cache import (
    ImageSet,
    cached_array,
    content_key,
    decode_pool,
    fingerprint,
    load_images,
)
from fersweep.data.dataset import MEMORY_SHARE, EmotionImages, available_memory, size_text
from fersweep.data.folder import read_folder
from fersweep.data.legend import DataReport, Record, read_legend
from fersweep.data.preprocess import Preprocessor, read_file
from fersweep.data.record import DataRecord
from fersweep.data.reframe import Framing, Framings
from fersweep.data.settings import DownloadConfig, Source, SplitConfig, SubsetConfig
from fersweep.data.source import IMAGES_DIR, LEGEND_NAME, resolve_data_root
from fersweep.data.split import SPLITS, check_folds, split_assignments
from fersweep.errors import ConfigError, DataError
from fersweep.imbalance.balancing import Balancing, expand_with_copies

log = logging.getLogger(__name__)
LAYOUTS = ("legend", "folder")


class EmotionDataModule(pl.LightningDataModule):
    """Reads the data set, preprocesses every image (cached), splits it and balances the
    training split; serves the batches. Settings arrive as Hydra composes them (the nested
    ones made typed here); what setup makes is declared below, None until then."""

    def __init__(
        self,
        root: str,
        local_copies: list[str],
        download: dict,
        layout: str,
        preprocess: Preprocessor,
        split: dict,
        subset: dict,
        batch_size: int,
        num_workers: int,
        decode_workers: int,
        cache_dir: str | None,
        balancing: Balancing,
        evaluate_on: str,
        reframe: Framing | Framings | None,
    ) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ConfigError(f"data.layout={layout!r}: use one of {LAYOUTS}")
        if batch_size <= 0:
            raise ConfigError(f"data.batch_size={batch_size}: must be positive")
        if evaluate_on not in SPLITS:
            raise ConfigError(f"eval_split={evaluate_on!r}: use one of {SPLITS}")
        if num_workers < 0:
            raise ConfigError(f"data.num_workers={num_workers}: must be 0 or more")
        self.root_setting, self.local_copies = root, local_copies
        self.download = DownloadConfig(**download)
        self.layout, self.preprocessor = layout, preprocess
        self.split_config = SplitConfig(**split)
        self.subset = SubsetConfig(**subset)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.decode_workers, self.cache_dir, self.balancing = decode_workers, cache_dir, balancing
        self.evaluate_on = evaluate_on
        # The framing check's directions by name, what every use of `reframe` asks of it.
        self.framings: dict[str, Framing] = reframe.named() if reframe is not None else {}
        if reframe is not None and balancing.before_split:
            raise ConfigError(
                "reframe: the framing check reframes original test images, but "
                "balancing.before_split=true puts augmented copies in the test split"
            )
        # Made by setup:
        self.root: Path | None = None
        self.images_dir: Path | None = None
        self.fingerprint: str | None = None
        self.image_set: ImageSet | None = None
        self.report: DataReport | None = None
        self.assignment: np.ndarray | None = None  # each image's split
        self.materialised_copy: np.ndarray | None = None  # the seed protocol's copies
        self.train_index: np.ndarray | None = None  # the training set, copies included
        self.train_is_copy: np.ndarray | None = None
        # Made by test_dataloader: the test images framed each way, by direction.
        self.reframed: dict[str, np.ndarray] = {}

    # --- loading -----------------------------------------------------------------------------

    def check_at_start(self) -> None:
        """What the legend alone can refuse, before any image is decoded or run opened: folds
        the people cannot fill, arrays that cannot fit in memory."""
        records = self.records()
        labels = np.array([r.label for r in records])
        if self.split_config.method == "identity_kfold":
            identities = np.array([r.identity for r in records])
            check_folds(labels, identities, self.split_config.folds)
        self._check_memory(records, labels)

    def _check_memory(self, records: list[Record], labels: np.ndarray) -> None:
        """Refuse a size whose arrays cannot fit in this machine's memory (all images at
        `size`x`size`, and the balanced copies made before the split)."""
        copies = 0
        if self.balancing.before_split and len(labels):
            copies = int(self.balancing.copies_per_image(labels, len(EMOTIONS), 0).sum())
        p = self.preprocessor
        needed = (len(records) + copies) * p.size * p.size * p.channels
        available = available_memory()
        if available is not None and needed > MEMORY_SHARE * available:
            raise ConfigError(
                f"data.preprocess.size={p.size}: {len(records):,} images"
                + (f" and {copies:,} balanced copies" if copies else "")
                + f" of {p.size}x{p.size}x{p.channels} need {size_text(needed)} in memory; "
                f"{size_text(available)} is available. Use a smaller size or data.subset.max_images"
            )

    def setup(self, stage: str | None = None) -> None:
        if self.image_set is not None:
            return
        source = self.source
        self.root, self.images_dir = source.root, source.images_dir
        records, report = self.records(), source.report
        self.fingerprint = self.content_fingerprint()
        image_set, decode_report = load_images(
            records,
            source.images_dir,
            self.preprocessor,
            Path(self.cache_dir) if self.cache_dir else None,
            self.fingerprint,
            self.decode_workers,
        )
        report.merge(decode_report)
        if len(image_set.records) == 0:
            raise DataError(f"no usable images under {source.root}: {report.as_dict()['problems']}")
        if self.balancing.before_split:
            image_set = self._materialise_copies(image_set)
        self.image_set, self.report = image_set, report
        self.assignment = self._assign_splits()
        self._report_empty_classes()
        self._build_training_set()

    def content_fingerprint(self) -> str:
        """The data set's fingerprint (its legend, every image's name and size), read without
        decoding an image: what a run tags as `data_fingerprint` once set up."""
        return fingerprint(self.source.legend, self.source.images_dir)

    def _assign_splits(self) -> np.ndarray:
        """The split, computed once per data and settings (a grouped stratified split of 13k
        images takes seconds) and cached beside the preprocessed arrays."""
        labels, identities = self.image_set.labels, self.image_set.identities
        path = None
        if self.cache_dir:
            key = content_key(labels, identities, asdict(self.split_config))
            path = Path(self.cache_dir) / f"split-{key}.npy"
        return cached_array(
            path, lambda: split_assignments(labels, identities, **asdict(self.split_config))
        )

    @cached_property
    def source(self) -> Source:
        """The data set's records, read once (the start-up check and `setup` both need them)."""
        if self.layout == "folder":
            root = Path(self.root_setting).expanduser().resolve()
            records, report = read_folder(root)
            return Source(records, report, root, root, None)
        root = resolve_data_root(
            self.root_setting, self.local_copies, self.download.enabled, self.download.url
        )
        records, report = read_legend(root / LEGEND_NAME, root / IMAGES_DIR)
        return Source(records, report, root, root / IMAGES_DIR, root / LEGEND_NAME)

    def records(self) -> list[Record]:
        """The images this module uses (the subset, if any), as the legend lists them: read
        without decoding an image."""
        return self._subset(self.source.records)

    def _subset(self, records: list[Record]) -> list[Record]:
        """A seeded, class-proportional sample, keeping `min_per_class` of each class when it can."""
        limit = self.subset.max_images
        if not limit or limit >= len(records):
            return records
        rng = np.random.default_rng(self.split_config.seed)
        labels = np.array([r.label for r in records])
        chosen = []
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            quota = max(round(len(members) * limit / len(records)), self.subset.min_per_class)
            chosen.extend(rng.choice(members, size=min(quota, len(members)), replace=False))
        return [records[i] for i in sorted(chosen)]

    def _materialise_copies(self, image_set: ImageSet) -> ImageSet:
        """The seed's protocol: fixed augmented copies made before the split (this leaks)."""
        copies = self.balancing.copies_per_image(
            image_set.labels, len(EMOTIONS), self.split_config.seed
        )
        index, is_copy = expand_with_copies(copies)
        expanded = image_set.take(index)
        for chunk in np.array_split(np.flatnonzero(is_copy), max(1, is_copy.sum() // 4096)):
            expanded.images[chunk] = self.balancing.augment(expanded.images[chunk])
        self.materialised_copy = is_copy
        return expanded

    def _report_empty_classes(self) -> None:
        present = set(np.unique(self.image_set.labels))
        for split in SPLITS:
            in_split = set(np.unique(self.image_set.labels[self.assignment == split]))
            for label in sorted(present - in_split):
                if split == "val" and self.split_config.val_fraction == 0:
                    continue
                message = f"{EMOTIONS[label]} has no images in the {split} split"
                log.warning(message)
                self.report.add("class_absent_from_split", message)

    def _build_training_set(self) -> None:
        train = np.flatnonzero(self.assignment == "train")
        labels = self.image_set.labels
        copies = np.zeros(len(train), dtype=np.int64)
        if not self.balancing.before_split:
            copies = self.balancing.copies_per_image(
                labels[train], len(EMOTIONS), self.split_config.seed
            )
        index, is_copy = expand_with_copies(copies)
        self.train_index, self.train_is_copy = train[index], is_copy

    # --- what the rest of fersweep asks -------------------------------------------------------

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.assignment == split)

    def files_and_people(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """The split's image files and whose face each shows, in the loaders' order."""
        index = self.indices(split)
        files = np.asarray(self.image_set.files)[index]
        return files, np.asarray(self.image_set.identities)[index]

    def class_counts(self, split: str) -> dict[str, int]:
        return self._counts(self.indices(split))

    def balanced_train_counts(self) -> dict[str, int]:
        return self._counts(self.train_index)

    def _counts(self, index: np.ndarray) -> dict[str, int]:
        counts = np.bincount(self.image_set.labels[index], minlength=len(EMOTIONS))
        return dict(zip(EMOTIONS, counts.tolist()))

    def class_counts_by_split(self) -> dict[str, dict[str, int]]:
        """Images per emotion in each split, and in the training set as balanced."""
        counts = {split: self.class_counts(split) for split in SPLITS}
        counts["train_balanced"] = self.balanced_train_counts()
        return counts

    def natural_prevalence(self) -> np.ndarray:
        """Each emotion's share of the original images (augmented copies left out)."""
        labels = self.image_set.labels
        if self.balancing.before_split:
            labels = labels[~self.materialised_copy]
        counts = np.bincount(labels, minlength=len(EMOTIONS))
        return counts / counts.sum()

    def loss_weights(self) -> torch.Tensor | None:
        return self.balancing.loss_weights(
            self.image_set.labels[self.indices("train")], len(EMOTIONS)
        )

    def record(self) -> DataRecord:
        """What a run records of this data (once set up)."""
        return DataRecord(
            report=self.report,
            fingerprint=self.fingerprint,
            root=Path(self.root),
            images_used=len(self.image_set.records),
            prevalence=self.natural_prevalence(),
            counts=self.class_counts_by_split(),
            split_table=self._split_table(),
        )

    def _split_table(self) -> pd.DataFrame:
        table = pd.DataFrame(
            {
                "file": self.image_set.files,
                "identity": self.image_set.identities,
                "emotion": [r.emotion for r in self.image_set.records],
                "split": self.assignment,
            }
        )
        if self.balancing.before_split:
            table["augmented_copy"] = self.materialised_copy
        if self.preprocessor.face is not None:  # what the face step did to each image
            table["face_step"] = self.image_set.outcomes
            boxes = self.image_set.boxes
            for column, name in enumerate(("face_x", "face_y", "face_width", "face_height")):
                table[name] = boxes[:, column]
            table["face_angle"] = self.image_set.angles.round(1)
        return table

    # --- loaders -----------------------------------------------------------------------------

    def train_dataset(self) -> EmotionImages:
        return EmotionImages(
            self.image_set.images,
            self.image_set.labels,
            self.train_index,
            self.train_is_copy,
            self.balancing,
        )

    def recurring_images(self) -> torch.Tensor:
        """The images every epoch serves again as they are (N x C x H x W uint8, as the loaders
        serve them): the training split's originals and the validation split; not the
        augmented copies, drawn anew each epoch."""
        index = np.union1d(self.train_index[~self.train_is_copy], self.indices("val"))
        images = self.image_set.images[index].transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(images))

    def eval_dataset(self, split: str) -> EmotionImages:
        return EmotionImages(self.image_set.images, self.image_set.labels, self.indices(split))

    def train_dataloader(self) -> DataLoader:
        dataset = self.train_dataset()
        sampler = self.balancing.sampler(dataset.labels[dataset.index], self.split_config.seed)
        return self._loader(dataset, shuffle=sampler is None, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("val")

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        """The split a run is scored on: test, or val inside a sweep (`eval_split`); with
        `reframe` set, its images framed each way (the framing check) as further loaders, in
        the order of `framings`."""
        loader = self.eval_dataloader(self.evaluate_on)
        if not self.framings:
            return loader
        index = self.indices(self.evaluate_on)
        labels = self.image_set.labels[index]
        self.reframed = {name: self.reframed_images(index, name) for name in self.framings}
        return [
            loader,
            *(
                self._loader(EmotionImages(images, labels, np.arange(len(index))), shuffle=False)
                for images in self.reframed.values()
            ),
        ]

    def reframed_images(self, index: np.ndarray, name: str) -> np.ndarray:
        """The images at `index`, framed as direction `name` (fersweep.data.reframe) and
        preprocessed as training images are; computed once per data, preprocessing and
        framing (cached)."""
        framing = self.framings[name]
        records = [self.image_set.records[i] for i in index]
        path = None
        if self.cache_dir:
            files = np.array([r.file for r in records])
            key = content_key(
                files,
                self.preprocessor.settings(),
                asdict(framing),
                {"fingerprint": self.fingerprint},
            )
            path = Path(self.cache_dir) / f"reframed-{key}.npy"
        return cached_array(path, lambda: self._reframe(records, framing))

    def _reframe(self, records: list[Record], framing: Framing) -> np.ndarray:
        def one(record: Record) -> np.ndarray:
            data = read_file(self.images_dir / record.file)
            picture = framing.reframed_file(data, record.file, self.preprocessor.max_pixels)
            return self.preprocessor.load_bytes(picture, f"{record.file} (reframed)").array

        with decode_pool(self.decode_workers) as pool:
            arrays = list(tqdm(pool.map(one, records), total=len(records), desc="reframe"))
        return np.stack(arrays)

    def eval_dataloader(self, split: str) -> DataLoader:
        return self._loader(self.eval_dataset(split), shuffle=False)

    def _loader(self, dataset: Dataset, shuffle: bool, sampler=None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
