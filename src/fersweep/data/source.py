"""Find the data set on disk, or download it from its public source."""

from __future__ import annotations

import logging
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from fersweep.data.legend import IMAGE_SUFFIXES, is_safe_relative_name
from fersweep.errors import DataError

log = logging.getLogger(__name__)

LEGEND_NAME = "legend.csv"
IMAGES_DIR = "images"


def is_legend_dataset(root: Path) -> bool:
    return (root / LEGEND_NAME).is_file() and (root / IMAGES_DIR).is_dir()


def resolve_data_root(
    root: str | Path, local_copies: list[str | Path], download: bool, url: str
) -> Path:
    """The folder holding `legend.csv` and `images/`.

    `root` first (the config's `data.root`, which `FERSWEEP_DATA` overrides), then each local
    copy, and only then a download from `url` into `root`.
    """
    root = Path(root).expanduser()
    for candidate in [root, *(Path(p).expanduser() for p in local_copies)]:
        if is_legend_dataset(candidate):
            return candidate.resolve()
    if not download:
        raise DataError(
            f"no data set at data.root={root} (nor in data.local_copies); expected "
            f"{LEGEND_NAME} and {IMAGES_DIR}/ there. Set FERSWEEP_DATA to a local copy, "
            "or data.download.enabled=true to fetch it."
        )
    download_dataset(url, root)
    return root.resolve()


def download_dataset(url: str, root: Path) -> None:
    """Download the source repository's archive from `url` and unpack its legend and images.

    Works for any URL urllib opens (https://, file://). Archive members that would land
    outside `root` are refused.
    """
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        archive = Path(scratch) / "archive.zip"
        log.info("downloading the data set from %s", url)
        try:
            _fetch(url, archive)
        except OSError as error:
            raise DataError(
                f"could not download the data set from data.download.url={url}: "
                f"{error}. Point FERSWEEP_DATA at a local copy instead."
            ) from error
        _unpack(archive, root)
    if not is_legend_dataset(root):
        raise DataError(f"the archive at {url} held no {LEGEND_NAME} and {IMAGES_DIR}/ folder")


def _fetch(url: str, destination: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, destination.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc="data set") as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))


def _unpack(archive: Path, root: Path) -> None:
    """Copy `<any>/legend.csv` and `<any>/images/*` out of the archive, flattening its folders."""
    try:
        bundle = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as error:
        raise DataError(f"the downloaded file is not a zip archive: {error}") from error
    images = root / IMAGES_DIR
    images.mkdir(exist_ok=True)
    with bundle:
        for member in bundle.infolist():
            if member.is_dir():
                continue
            if not is_safe_relative_name(member.filename):
                raise DataError(f"refusing archive member outside the data root: {member.filename}")
            path = PurePosixPath(member.filename)
            # The source keeps its labels in data/legend.csv; a flat archive has it at the top.
            if path.name == LEGEND_NAME and (path.parent.name == "data" or len(path.parts) <= 2):
                target = root / LEGEND_NAME
            elif path.parent.name == IMAGES_DIR and path.suffix.lower() in IMAGE_SUFFIXES:
                target = images / path.name
            else:
                continue
            with bundle.open(member) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out)
