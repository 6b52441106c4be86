"""The fault suite: bad data, bad config, crashed and killed trials. Nothing is lost, every
problem is explained. The number of cases tried is printed at the end of the test run."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import mlflow
import numpy as np
import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

import fersweep.tasks.sweep.trials
from fersweep.config.compose import build, compose_config
from fersweep.errors import ConfigError, DataError
from fersweep.studies.storage import counted_trials
from fersweep.tasks.sweep import Sweep, run_sweep
from fersweep.tasks.train import train
from tests.conftest import CONFIG_DIR, PROJECT_ROOT, record_faults, write_legend
from tests.test_sweep import definition, make_sweep, runs_by_kind, sweep_arguments


def png_announcing(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height: decoding it would need that much memory."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.fixture
def corrupted(tiny_dataset: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the tiny data set with one of each kind of broken input, and the file each
    problem must be reported with."""
    images = tiny_dataset / "images"
    originals = sorted(images.iterdir())
    jpeg = originals[0].read_bytes()
    (images / "Cut_0001.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (images / "Empty_0001.jpg").write_bytes(b"")
    (images / "Text_0001.jpg").write_text("hello, I am not a picture")
    cv2.imwrite(str(images / "Dot_0001.png"), np.zeros((1, 1), np.uint8))
    (images / "Huge_0001.png").write_bytes(png_announcing(12_000, 12_000))
    rows = [(p.name, p.name.split("_")[1].lower()) for p in originals]
    rows = [(file, "HAPPINESS" if i == 0 else emotion) for i, (file, emotion) in enumerate(rows)]
    rows += [
        (name, "neutral")
        for name in (
            "Cut_0001.jpg",
            "Empty_0001.jpg",
            "Text_0001.jpg",
            "Dot_0001.png",
            "Huge_0001.png",
        )
    ]
    rows += [
        ("Missing_0001.jpg", "anger"),
        ("../../etc/passwd", "anger"),
        ("/etc/passwd", "fear"),
        (originals[1].name, "boredom"),
        (originals[2].name, "surprise"),  # conflicts with its own row above
    ]
    write_legend(tiny_dataset / "legend.csv", rows)
    expected = {
        "unreadable_image": "Cut_0001.jpg, Empty_0001.jpg, Text_0001.jpg, Dot_0001.png, Huge_0001.png",
        "missing_file": "Missing_0001.jpg",
        "unsafe_path": "../../etc/passwd",
        "unknown_label": "boredom",
        "conflicting_duplicate": originals[2].name,
        "exact_duplicate": originals[1].name,  # once the unknown label is dropped, a duplicate
    }
    return tiny_dataset, expected


def test_bad_data_is_skipped_named_and_counted_and_training_goes_on(corrupted, compose, capsys):
    root, expected = corrupted
    cfg = compose(
        f"data.root={root}",
        "data.preprocess.size=32",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "tracking.log_model=false",
        "data.preprocess.max_pixels=50_000_000",
    )
    result = train(cfg)
    assert 0 <= result.metrics["test/macro_f1"] <= 1
    report = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/data/data_report.json")
    problems, examples = report["problems"], report["examples"]
    assert problems["unreadable_image"] == 5
    assert problems["unsafe_path"] == 2
    assert problems["missing_file"] == 1 and problems["unknown_label"] == 1
    assert problems["conflicting_duplicate"] == 1
    assert problems["label_case_folded"] == 1  # "HAPPINESS": kept as happiness, and counted
    for problem, names in expected.items():
        if problem == "exact_duplicate":
            continue
        for name in names.split(", "):
            assert any(name in example for example in examples[problem]), (problem, name)
    reasons = " ".join(examples["unreadable_image"])
    for reason in ("truncated JPEG", "empty file", "not an image", "min_side", "max_pixels"):
        assert reason in reasons
    assert "unreadable_image" in capsys.readouterr().out  # the console report shows it too
    record_faults("bad inputs", 5 + 1 + 2 + 1 + 1 + 1)  # files, missing, unsafe, label, case, dup


@pytest.mark.parametrize(
    "legend, message",
    [
        ("Person_0001.jpg,happiness\n", "lacks column"),
        (b"\xff\xfe\x00garbage\x00\n", "not a readable CSV"),
    ],
    ids=["header-less", "binary"],
)
def test_a_legend_that_cannot_be_used_stops_at_start(tiny_dataset, compose, legend, message):
    path = tiny_dataset / "legend.csv"
    path.write_bytes(legend if isinstance(legend, bytes) else legend.encode())
    cfg = compose(f"data.root={tiny_dataset}", "trainer.accelerator=cpu")
    with pytest.raises(DataError, match=message):
        train(cfg)
    record_faults("bad inputs")


def test_a_class_left_without_images_in_a_split_is_reported(tiny_dataset, compose):
    rows = [
        (p.name, p.name.split("_")[1].lower()) for p in sorted((tiny_dataset / "images").iterdir())
    ]
    # Contempt shown by one person only: it can sit in one split alone.
    rows = [(f, e) for f, e in rows if e != "contempt" or "_0_" in f]
    write_legend(tiny_dataset / "legend.csv", rows)
    cfg = compose(
        f"data.root={tiny_dataset}",
        "data.preprocess.size=32",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "tracking.log_model=false",
        "trainer.enable_progress_bar=false",
    )
    result = train(cfg)
    report = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/data/data_report.json")
    contempt = [m for m in report["examples"]["class_absent_from_split"] if "contempt" in m]
    assert len(contempt) == 2  # one person: in one split, absent from the other two
    assert report["problems"]["class_absent_from_split"] >= 2
    record_faults("bad inputs")


def test_a_huge_image_is_refused_from_its_header_without_decoding(tmp_path):
    from fersweep.data.preprocess import Preprocessor

    path = tmp_path / "bomb.png"
    path.write_bytes(png_announcing(100_000, 100_000))  # 10 gigapixels: decoding would need 10 GB
    prep = Preprocessor(
        channels=1, size=50, fit="pad", max_pixels=50_000_000, min_side=8, face=None
    )
    with pytest.raises(Exception, match="bomb.png.*max_pixels"):
        prep.load(path)
    record_faults("bad inputs")


def test_a_cache_file_holding_pickled_objects_is_never_unpickled(tiny_dataset, compose):
    cfg = compose(f"data.root={tiny_dataset}", "data.preprocess.size=32")
    datamodule = build(cfg.data)
    datamodule.setup()
    (cache,) = Path(cfg.data.cache_dir).glob("*.npz")
    marker = tiny_dataset.parent / "pwned"
    np.savez(cache, images=np.array([Exploit()], dtype=object), files=np.array(["x"]))
    again = build(cfg.data)
    again.setup()
    assert not marker.exists()
    assert np.array_equal(again.image_set.images, datamodule.image_set.images)
    record_faults("bad inputs")


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


BAD_CONFIGS = [
    (["data.preprocess.size=0"], "data.preprocess.size"),
    (["data.preprocess.size=-50"], "data.preprocess.size"),
    (["data.batch_size=0"], "data.batch_size"),
    (["model.net.kernel_size=60"], "model.net.kernel_size"),
    (["model.net.filters=-1"], "model.net.filters"),
    (["optimizer=rmsprop_typo"], "optimizer"),
    (["balancing=smote"], "balancing"),
    (["balancing.method=smote"], "balancing.method"),
    (["balancing.factor=-2", "balancing=balanced"], "balancing.factor"),
    (["data.split.test_fraction=1.5"], "data.split.test_fraction"),
    (["data.preprocess.fit=stretch"], "data.preprocess.fit"),
    (["data.split.method=identity_kfold"], "data.split.folds=5"),  # 4 people per emotion
    (["data.split.method=identity_kfold", "data.split.fold=7"], "data.split.fold=7"),
    (["loss=ldam"], "loss"),  # no such option: Hydra lists the ones there are
    (["loss=logit_adjusted", "loss.tau=-1"], "loss.tau"),
    (["loss=focal", "loss.gamma=-2"], "loss.gamma"),
    (["loss=class_weighted", "loss.beta=1.5"], "loss.beta"),
    (["mix=mixup", "mix.methods=[blend]"], "mix.methods"),
    (["mix=mixup", "mix.alpha=-1"], "mix.alpha"),
    (["posthoc=offsets", "posthoc.grid=[1.0]"], "posthoc.grid"),
    (["posthoc=offsets", "data.split.val_fraction=0", "callbacks=last_epoch"], "posthoc=offsets"),
    (["model=resnet", "model.net.blocks=[1,1,1,1,1,1,1]"], "model.net.blocks"),
    (["model=hog_svm", "model.cell=7"], "model.cell"),
]


@pytest.mark.parametrize("overrides, key", BAD_CONFIGS, ids=[" ".join(o) for o, _ in BAD_CONFIGS])
def test_a_bad_setting_fails_at_start_naming_the_key(tiny_dataset, tmp_path, overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        cfg = compose_config(
            CONFIG_DIR, [f"paths.root_dir={tmp_path}", f"data.root={tiny_dataset}", *overrides]
        )
        train(cfg)
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # stopped before any run began
    record_faults("bad settings")


@pytest.mark.parametrize(
    "change, key",
    [
        (
            {"search_space": {"model.net.filters": {"type": "categorical", "choices": []}}},
            "choices is empty",
        ),
        (
            {"search_space": {"model.net.filters": {"type": "int", "low": 9, "high": 2}}},
            "low <= high",
        ),
        ({"search_space": {"model.net.filters": {"type": "gaussian"}}}, "type"),
        ({"storage": "postgresql://nobody@127.0.0.1:1/none"}, "sweep.storage"),
        ({"storage": "not a url"}, "sweep.storage"),
        ({"trials": 0}, "sweep.trials"),
        (
            {
                "search_space": {
                    "loss.tau": {
                        "type": "float",
                        "low": 0.5,
                        "high": 2.0,
                        "when": {"loss": ["logit_adjusted"]},
                    }
                }
            },
            "search_space.loss.tau.when: 'loss' must be a categorical key",
        ),
        (
            {
                "search_space": {
                    "loss": {"type": "categorical", "choices": ["cross_entropy", "focal"]},
                    "loss.tau": {
                        "type": "float",
                        "low": 0.5,
                        "high": 2.0,
                        "when": {"loss": ["logit_adjusted"]},
                    },
                }
            },
            r"search_space.loss.tau.when.loss: \['logit_adjusted'\] not among",
        ),
        (
            {
                "search_space": {
                    "loss": {"type": "categorical", "choices": ["logit_adjusted"]},
                    "loss.tau": {
                        "type": "float",
                        "low": 12.0,
                        "high": 20.0,
                        "when": {"loss": ["logit_adjusted"]},
                    },
                }
            },
            r"loss.tau=12.0: must be in",
        ),
    ],
    ids=[
        "empty choice",
        "inverted range",
        "unknown type",
        "unreachable storage",
        "not a URL",
        "zero trials",
        "condition on a missing key",
        "condition on a missing choice",
        "loss parameter out of range",
    ],
)
def test_a_bad_sweep_fails_at_start_naming_the_key(tmp_path, tiny_run_overrides, change, key):
    path = definition(tmp_path, **change)
    with pytest.raises(ConfigError, match=key):
        run_sweep(make_sweep(path, [f"paths.root_dir={tmp_path}", *tiny_run_overrides]))
    record_faults("bad settings")


def test_images_and_copies_that_would_not_fit_in_memory_stop_the_run_at_start(
    tiny_dataset, tmp_path, monkeypatch
):
    monkeypatch.setattr("fersweep.data.datamodule.available_memory", lambda: 40_000_000)
    cfg = compose_config(
        CONFIG_DIR,
        [
            f"paths.root_dir={tmp_path}",
            f"data.root={tiny_dataset}",
            "data.preprocess.size=512",
            "experiment=seed_balanced_copies",  # copies made before the split count too
            "balancing.target=64",  # 16 images of each emotion, 48 copies each
        ],
    )
    with pytest.raises(ConfigError, match=r"128 images and 384 balanced copies .* 134\.2 MB"):
        train(cfg)
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()
    record_faults("bad settings")


def test_entry_points_print_one_clear_line_not_a_traceback(tmp_path):
    env = {**os.environ, "FERSWEEP_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "train.py", "model.net.kernel_size=99"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "fersweep: error: model.net.kernel_size=99" in result.stderr
    assert "Traceback" not in result.stderr
    record_faults("bad settings")


# --- faults during sweeps ---------------------------------------------------------------------


@pytest.fixture
def sweep_overrides(tmp_path, tiny_run_overrides, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return [f"paths.root_dir={tmp_path}", *tiny_run_overrides]


def one_arm(tmp_path: Path, **changes) -> Path:
    return definition(tmp_path, arms={"original": {"overrides": ["balancing=none"]}}, **changes)


class StridingClock:
    """A clock that advances `stride` seconds each time it is read."""

    def __init__(self, stride: float) -> None:
        self.now, self.stride = 0.0, stride

    def __call__(self) -> float:
        self.now += self.stride
        return self.now


def test_a_trial_over_its_time_budget_is_failed_and_the_sweep_goes_on(
    tmp_path, sweep_overrides, monkeypatch
):
    # Each read of the trial clock is a minute later, so the first batch overruns the budget.
    monkeypatch.setattr(fersweep.tasks.sweep.trials, "trial_clock", StridingClock(stride=61))
    path = one_arm(tmp_path, trial_timeout_minutes=1)
    sweep = make_sweep(path, sweep_overrides, trials=2)
    run_sweep(sweep)
    trials = sweep.open_study("original").trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 2
    assert "trial_timeout_minutes" in trials[0].user_attrs["error"]
    runs = runs_by_kind(sweep, "trial")
    assert {r.info.status for r in runs} == {"FAILED"}
    record_faults("faults injected", 2)


def sweep_process(path: Path, overrides: list[str], log: Path, **own) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "sweep.py", *sweep_arguments(path, overrides, **own)],
        cwd=PROJECT_ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for(condition, seconds: float, what: str):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def trial_in_flight(storage: str, study: str, after: int):
    """The first running trial (with its MLflow run started) once `after` trials completed."""
    try:
        trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    except (KeyError, sqlalchemy.exc.OperationalError):  # the worker has not created it yet
        return None
    done = sum(t.state == TrialState.COMPLETE for t in trials)
    running = [
        t for t in trials if t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs
    ]
    return running[0] if done >= after and running else None


def freeze_mid_trial(worker: subprocess.Popen, storage: str, study: str, after: int):
    """Stop the worker (SIGSTOP) while one of its trials runs and return that trial: a stopped
    worker cannot finish it, so a kill that follows lands mid-trial, never at a trial's end."""
    while True:
        wait_for(lambda: trial_in_flight(storage, study, after), 240, "a running trial")
        os.killpg(worker.pid, signal.SIGSTOP)
        if running := trial_in_flight(storage, study, after):
            return running
        os.killpg(worker.pid, signal.SIGCONT)  # it finished between the two looks: go on


def wait_until_failed_for_silence(sweep: Sweep, number: int) -> None:
    """Optuna fails a trial whose heartbeat stopped once the grace period has passed; wait for
    that state rather than sleeping past the grace period."""
    study = sweep.open_study("original")

    def failed() -> bool:
        optuna.storages.fail_stale_trials(study)
        return study.trials[number].state == TrialState.FAIL

    wait_for(failed, 60, f"trial {number} to be failed for its silent heartbeat")


def assert_nothing_lost(sweep: Sweep, completed_before: dict[int, float], requested: int) -> None:
    study = sweep.open_study("original")
    for number, value in completed_before.items():
        assert study.trials[number].state == TrialState.COMPLETE
        assert study.trials[number].value == value
    assert counted_trials(study) == requested
    mlflow.set_tracking_uri(sweep.base_config().tracking.tracking_uri)
    runs = {r.data.tags["optuna_trial"]: r for r in runs_by_kind(sweep, "trial")}
    assert len(runs) == len(study.trials)
    for trial in study.trials:
        run = runs[str(trial.number)]
        expected = {
            TrialState.COMPLETE: "FINISHED",
            TrialState.PRUNED: "KILLED",
            TrialState.FAIL: "FAILED",
        }[trial.state]
        assert run.info.status == expected, (trial.number, trial.state, run.info.status)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_worker_killed_mid_trial_loses_nothing_when_the_sweep_restarts(tmp_path, sweep_overrides):
    path = one_arm(tmp_path, heartbeat_seconds=1, max_retry=2)
    sweep = make_sweep(path, sweep_overrides, trials=3)
    worker = sweep_process(path, sweep_overrides, tmp_path / "worker.log", trials=3)
    victim = freeze_mid_trial(worker, sweep.storage_url, "tiny-original", after=1)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    study = sweep.open_study("original")
    completed = {t.number: t.value for t in study.trials if t.state == TrialState.COMPLETE}
    wait_until_failed_for_silence(sweep, victim.number)
    run_sweep(sweep)
    study = sweep.open_study("original")
    assert study.trials[victim.number].state == TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert_nothing_lost(sweep, completed, requested=3)
    record_faults("faults injected")
    record_faults("trials lost", 0)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.postgres
def test_two_workers_on_postgresql_one_killed_the_other_finishes(
    tmp_path, sweep_overrides, postgres_database
):
    path = one_arm(tmp_path, heartbeat_seconds=1, max_retry=2)
    own = {"trials": 4, "storage": postgres_database}
    sweep = make_sweep(path, sweep_overrides, **own)
    doomed = sweep_process(path, sweep_overrides, tmp_path / "doomed.log", **own)
    victim = freeze_mid_trial(doomed, postgres_database, "tiny-original", after=0)
    survivor = sweep_process(path, sweep_overrides, tmp_path / "survivor.log", **own)
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    assert survivor.wait(timeout=600) == 0, (tmp_path / "survivor.log").read_text()[-3000:]
    study = sweep.open_study("original")
    assert study.trials[victim.number].state == TrialState.FAIL
    assert all(t.state != TrialState.RUNNING for t in study.trials)
    assert_nothing_lost(sweep, {}, requested=4)
    record_faults("faults injected")
    record_faults("trials lost", 0)
