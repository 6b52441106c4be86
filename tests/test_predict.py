"""Using a model: predict, evaluate a labelled folder, serve over HTTP, and bad input answered
clearly. One tiny model is trained for the module."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import psutil
import pytest
from PIL import Image

from fersweep import EMOTIONS
from fersweep.cli import main as cli
from fersweep.config.compose import compose_config
from fersweep.errors import ConfigError, DataError
from fersweep.services.processes import REQUESTS_AT_ONCE
from fersweep.serving.pyfunc import requests_at_once
from fersweep.tasks.train import train
from fersweep.tracking import registry
from tests.conftest import CONFIG_DIR, REAL_DATA, quoted, synthetic_face, two_people_photo


@pytest.fixture(scope="module")
def model(module_workspace):
    folder, overrides = module_workspace
    cfg = compose_config(CONFIG_DIR, overrides)
    result = train(cfg, overrides)
    uri = cfg.tracking.tracking_uri
    return f"runs:/{result.run_id}/classifier", uri, folder


def labelled_folder(root: Path, emotions: dict[str, int]) -> Path:
    rng = np.random.default_rng(3)
    for folder_name, count in emotions.items():
        (root / folder_name).mkdir(parents=True)
        label = EMOTIONS.index(folder_name.lower())
        for i in range(count):
            name = f"Person_{folder_name}_{i // 2}_{i:04d}.jpg"  # two images per person
            cv2.imwrite(str(root / folder_name / name), synthetic_face(label, rng))
    return root


def run_cli(capsys, command: str, tracking: str, *settings: str) -> tuple[int, str, str]:
    """`fersweep <command> tracking.tracking_uri=<tracking> <settings>` in the project."""
    argv = ["--config-dir", str(CONFIG_DIR), command, f"tracking.tracking_uri={quoted(tracking)}"]
    code = cli([*argv, *settings])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def image_list(*paths: Path | str) -> str:
    return f"images=[{','.join(quoted(path) for path in paths)}]"


def test_the_pyfunc_takes_raw_images_of_any_size_grey_or_colour(model, tmp_path):
    uri, tracking, _ = model
    mlflow.set_tracking_uri(tracking)
    classifier = mlflow.pyfunc.load_model(uri)
    colour = cv2.imencode(".jpg", np.full((37, 27, 3), 90, np.uint8))[1].tobytes()
    grey = cv2.imencode(".png", synthetic_face(4, np.random.default_rng(0), size=350))[1].tobytes()
    table = classifier.predict(pd.DataFrame({"image": [colour, grey, b"not an image"]}))
    assert list(table.columns[:8]) == [
        "image", "face", "x", "y", "width", "height", "emotion", "probability"
    ]  # fmt: skip
    assert table["image"].tolist() == [0, 1, 2]
    assert table.loc[0, ["x", "y", "width", "height"]].tolist() == [0, 0, 27, 37]  # all of it
    probabilities = table[[f"p_{e}" for e in EMOTIONS]]
    assert probabilities.loc[:1].astype(float).sum(axis=1).round(4).tolist() == [1.0, 1.0]
    assert set(table.loc[:1, "emotion"]) <= set(EMOTIONS) and table.loc[2, "emotion"] == ""
    assert "not an image" in table.loc[2, "error"]
    # No value is None (null in JSON), never NaN, which strict JSON parsers refuse.
    assert table.loc[2, "probability"] is None and probabilities.loc[2].isna().all()


def test_a_request_with_no_usable_image_is_refused_naming_each_row(model):
    uri, tracking, _ = model
    mlflow.set_tracking_uri(tracking)
    classifier = mlflow.pyfunc.load_model(uri)
    with pytest.raises(DataError, match="row 0: empty file; row 1: not an image"):
        classifier.predict(pd.DataFrame({"image": [b"", b"plain text"]}))


def test_predict_prints_and_writes_the_table(model, tmp_path, capsys):
    uri, tracking, folder = model
    images = folder / "facial_expressions" / "images"
    files = sorted(images.iterdir())[:3]
    for suffix in ("csv", "json"):
        out = tmp_path / f"predictions.{suffix}"
        code, printed, _ = run_cli(
            capsys, "predict", tracking, image_list(*files), f"model_uri={uri}", f"output={out}"
        )
        assert code == 0 and "3 face(s) classified" in printed
    table = pd.read_csv(tmp_path / "predictions.csv")
    assert len(table) == 3 and table["probability"].between(0, 1).all()
    records = json.loads((tmp_path / "predictions.json").read_text())
    assert records[0]["file"] == str(files[0]) and records[0]["emotion"] in EMOTIONS


def test_predict_takes_a_folder_and_skips_a_bad_file_by_name(model, tmp_path, capsys):
    uri, tracking, folder = model
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    cv2.imwrite(str(mixed / "good.jpg"), synthetic_face(1, np.random.default_rng(1)))
    (mixed / "broken.jpg").write_text("this is a text file")
    code, printed, _ = run_cli(capsys, "predict", tracking, f"images={mixed}", f"model_uri={uri}")
    assert code == 0 and "good.jpg" in printed
    assert "not classified" in printed and "broken.jpg" in printed


def test_evaluate_scores_a_labelled_folder_over_the_emotions_it_holds(model, tmp_path, capsys):
    uri, tracking, _ = model
    folder = labelled_folder(tmp_path / "mine", {"Happiness": 6, "sadness": 5})
    out = tmp_path / "report"
    open_before = set(plt.get_fignums())
    code, printed, _ = run_cli(
        capsys, "evaluate", tracking, f"folder={folder}", f"model_uri={uri}",
        f"output_dir={out}", "log=true",
    )  # fmt: skip
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())["original"]
    assert set(metrics) == {"accuracy", "macro_f1", "weighted_f1", "balanced_accuracy"}
    assert (out / "confusion.png").stat().st_size > 0
    assert set(plt.get_fignums()) <= open_before  # the figure written was closed, not kept
    report = pd.read_csv(out / "report.csv", index_col=0)
    assert report.loc["happiness", "support"] == 6 and report.loc["sadness", "support"] == 5
    client = mlflow.MlflowClient(tracking)
    experiment = client.get_experiment_by_name("fersweep-evaluations")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["model_uri"] == uri
    assert run.data.metrics["eval/macro_f1"] == pytest.approx(metrics["macro_f1"])


def test_a_labelled_folder_is_also_a_training_data_set(tmp_path, compose):
    folder = labelled_folder(tmp_path / "own", {e: 12 for e in ("anger", "happiness", "neutral")})
    cfg = compose(
        "data=folder",
        f"data.root={folder}",
        "data.preprocess.size=32",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "tracking.log_model=false",
        "data.split.val_fraction=0.25",
        "data.split.test_fraction=0.25",
    )
    result = train(cfg)
    assert set(np.unique(result.truth)) <= {0, 4, 5} and len(result.truth) > 0


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: p.mkdir(), "no images"),
        (lambda p: (p / "boredom").mkdir(parents=True), "boredom"),
    ],
    ids=["empty folder", "unknown emotion folder"],
)
def test_bad_folders_are_refused_with_a_clear_message(model, tmp_path, capsys, setup, message):
    uri, tracking, _ = model
    folder = tmp_path / "bad"
    setup(folder)
    code, printed, error = run_cli(
        capsys, "evaluate", tracking, f"folder={folder}", f"model_uri={uri}"
    )
    assert code == 2 and message in error and "Traceback" not in error + printed


def test_only_unusable_files_is_an_error_naming_them(model, tmp_path, capsys):
    uri, tracking, _ = model
    (tmp_path / "empty.jpg").write_bytes(b"")
    code, _, error = run_cli(
        capsys, "predict", tracking, f"images={tmp_path / 'empty.jpg'}", f"model_uri={uri}"
    )
    assert code == 2 and "empty.jpg" in error and "empty file" in error


def test_a_model_uri_that_does_not_exist_is_named(model, tmp_path, capsys):
    _, tracking, folder = model
    image = next((folder / "facial_expressions" / "images").iterdir())
    code, _, error = run_cli(
        capsys, "predict", tracking, image_list(image), "model_uri=models:/no-such-model@champion"
    )
    assert code == 2 and "no-such-model" in error


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(port: int, images: list[bytes], **params) -> tuple[int, bytes]:
    """POST images to the model server; the HTTP status and the body, errors included."""
    rows = [[base64.b64encode(image).decode()] for image in images]
    body = {"dataframe_split": {"columns": ["image"], "data": rows}, "params": params}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_served_classifier_classifies_as_many_requests_at_once_as_fersweep_serve_allows(
    model, monkeypatch
):
    """MLflow's server runs each request in a thread of its own; the classifier lets the number
    `fersweep serve` sets run at once (its share of the cores), the rest wait their turn."""
    uri, tracking, folder = model
    monkeypatch.setenv(REQUESTS_AT_ONCE, "2")
    mlflow.set_tracking_uri(tracking)
    classifier = mlflow.pyfunc.load_model(uri)
    inner = classifier.unwrap_python_model()
    running, most, lock = [0], [0], threading.Lock()
    classify = inner._predict

    def watched(*args):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return classify(*args)

    monkeypatch.setattr(inner, "_predict", watched)
    image = next((folder / "facial_expressions" / "images").iterdir()).read_bytes()
    request = pd.DataFrame({"image": [image]})
    with ThreadPoolExecutor(6) as clients:
        tables = list(clients.map(lambda _: classifier.predict(request), range(6)))
    assert most[0] == 2
    assert all(table.loc[0, "emotion"] in EMOTIONS for table in tables)


def test_fersweep_serve_gives_each_worker_its_requests_at_once_on_one_torch_thread_each(
    monkeypatch,
):
    started = {}
    monkeypatch.setattr(registry, "run_until_stopped", lambda _, env: started.update(env) or 0)
    monkeypatch.setattr(registry, "core_share", lambda workers: 4 // workers)
    registry.serve_model("runs:/abc/classifier", "sqlite:///x.db", "127.0.0.1", 5002, workers=2)
    assert started["OMP_NUM_THREADS"] == "1" and started[REQUESTS_AT_ONCE] == "2"


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_requests_at_once_setting_is_refused_naming_it(monkeypatch, value):
    monkeypatch.setenv(REQUESTS_AT_ONCE, value)
    with pytest.raises(ConfigError, match=f"{REQUESTS_AT_ONCE}='{value}'"):
        requests_at_once()


def strict_json(body: bytes):
    """JSON as a browser's JSON.parse reads it: NaN and Infinity are errors."""
    return json.loads(body, parse_constant=lambda name: pytest.fail(f"{name} in {body[:200]!r}"))


def test_fersweep_serve_answers_a_rest_request_and_stops_whole_on_sigterm(model, tmp_path):
    uri, tracking, folder = model
    port = free_port()
    fersweep = Path(sys.executable).parent / "fersweep"  # the installed command itself
    server = subprocess.Popen(
        [
            str(fersweep),
            "serve",
            f"tracking.tracking_uri={quoted(tracking)}",
            f"model_uri={uri}",
            f"port={port}",
        ],  # fmt: skip
        cwd=tmp_path,  # nothing of the project's folder is needed to serve a tracked model
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # `fersweep serve` starts MLflow's server: stop them together
    )
    try:
        deadline = time.time() + 240  # a loaded machine can take minutes to import MLflow
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.time() < deadline, "the model server did not start in 240 s"
                time.sleep(1)
        image = next((folder / "facial_expressions" / "images").iterdir()).read_bytes()
        body = {
            "dataframe_split": {"columns": ["image"], "data": [[base64.b64encode(image).decode()]]}
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            (answer,) = json.loads(response.read())["predictions"]
        assert answer["emotion"] in EMOTIONS
        assert sum(answer[f"p_{e}"] for e in EMOTIONS) == pytest.approx(1.0, abs=1e-4)

        status, body = post(port, [image, b"not an image"], whole_image=True)
        good, bad = strict_json(body)["predictions"]
        assert status == 200 and good["emotion"] in EMOTIONS and good["face"] == 0
        assert bad["probability"] is None and "not an image" in bad["error"]

        status, body = post(port, [b"not an image", b""])
        assert status == 400 and "no" in strict_json(body)["message"]

        odd = tmp_path / "odd"
        expected = odd_pictures(odd)
        status, body = post(port, [(odd / "huge.png").read_bytes()])
        assert status == 400 and expected["huge.png"] in strict_json(body)["message"]
        status, body = post(port, [(odd / "deep.png").read_bytes()])
        (answer,) = strict_json(body)["predictions"]
        assert status == 200 and answer["note"] == expected["deep.png"]
        # Stopped as a service manager or a container stops it: SIGTERM to `fersweep serve`
        # alone. What it started (MLflow's server, its uvicorn worker) stops with it.
        started = psutil.Process(server.pid).children(recursive=True)
        assert started  # MLflow's server at least
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        assert not [p.pid for p in started if p.is_running() and p.status() != "zombie"]
        with socket.socket() as probe:  # nothing listens on the port (closed ones may linger)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


# --- the face step at prediction ----------------------------------------------------------------


@pytest.fixture(scope="module")
def face_model(module_workspace):
    """A tiny model trained with the face step (on synthetic pictures it finds no face and keeps
    them whole, as it does for the data set's few misses); on real faces it cuts them out."""
    folder, overrides = module_workspace
    overrides = [*overrides, "face=haar", "run_name=with-face-step"]
    cfg = compose_config(CONFIG_DIR, overrides)
    result = train(cfg, overrides)
    return f"runs:/{result.run_id}/classifier", cfg.tracking.tracking_uri


def test_a_picture_without_a_face_is_one_clear_line_or_classified_whole_on_request(
    face_model, tmp_path, capsys
):
    uri, tracking = face_model
    picture = tmp_path / "wall.png"
    cv2.imwrite(str(picture), np.full((120, 160), 128, np.uint8))
    args = ["predict", tracking, image_list(picture), f"model_uri={uri}"]
    code, printed, error = run_cli(capsys, *args)
    assert code == 2 and "wall.png: no face found" in error and "Traceback" not in error
    code, printed, _ = run_cli(capsys, *args, "whole_image=true")
    assert code == 0 and "1 face(s) classified" in printed
    assert "wall.png: no face found: whole picture kept" in " ".join(printed.split())


@pytest.mark.skipif(not (REAL_DATA / "images").is_dir(), reason=f"no real data at {REAL_DATA}")
def test_a_photo_of_two_people_gets_a_row_and_a_drawn_box_per_face(face_model, tmp_path, capsys):
    uri, tracking = face_model
    photo = tmp_path / "two.jpg"
    data, placed = two_people_photo()
    photo.write_bytes(data)
    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((120, 160), 128, np.uint8))
    table, drawn = tmp_path / "faces.csv", tmp_path / "drawn"
    code, printed, _ = run_cli(
        capsys, "predict", tracking, image_list(photo, wall), f"model_uri={uri}",
        f"output={table}", f"annotate={drawn}",
    )  # fmt: skip
    assert code == 0 and "2 face(s) classified" in printed
    assert "wall.png: no face found" in " ".join(printed.split())
    rows = pd.read_csv(table, keep_default_na=False)
    faces = rows[rows["file"] == str(photo)]
    assert faces["face"].tolist() == [0, 1] and (faces["error"] == "").all()
    assert faces["emotion"].isin(EMOTIONS).all()
    centres = list(zip(faces["x"] + faces["width"] / 2, faces["y"] + faces["height"] / 2))
    for x, y in placed:
        assert any(abs(x - cx) < 25 and abs(y - cy) < 25 for cx, cy in centres)
    (wall_row,) = rows[rows["file"] == str(wall)].itertuples()
    assert "no face found" in wall_row.error
    assert sorted(p.name for p in drawn.iterdir()) == ["two.jpg", "wall.jpg"]
    annotated = cv2.imread(str(drawn / "two.jpg"))
    original = cv2.imread(str(photo))
    assert annotated.shape == original.shape
    assert np.abs(annotated.astype(int) - original).max() > 100  # boxes and labels drawn


def odd_pictures(folder: Path) -> dict[str, str]:
    """Pictures as people have them, each with the note or error it must give."""
    folder.mkdir()
    face = synthetic_face(5, np.random.default_rng(2), size=64)
    cv2.imwrite(str(folder / "deep.png"), face.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "cut.png"), np.dstack([face, face, face, np.full_like(face, 200)]))
    Image.fromarray(face).convert("CMYK").save(folder / "print.jpg")
    frames = [Image.fromarray(face), Image.fromarray(255 - face)]
    frames[0].save(folder / "wave.gif", save_all=True, append_images=frames[1:])
    Image.new("L", (9000, 9000)).save(folder / "huge.png")
    return {
        "deep.png": "16-bit: scaled to 8 bits",
        "cut.png": "transparency: composited on black",
        "print.jpg": "CMYK: converted to RGB",
        "wave.gif": "animated GIF with 2 frames: the first used",
        "huge.png": "9000x9000 pixels exceeds data.preprocess.max_pixels",
    }


def test_odd_pictures_each_get_one_clear_line(model, tmp_path, capsys):
    uri, tracking, _ = model
    expected = odd_pictures(tmp_path / "odd")
    out = tmp_path / "odd.csv"
    code, printed, _ = run_cli(
        capsys, "predict", tracking, image_list(*(tmp_path / "odd" / f for f in expected)),
        f"model_uri={uri}", f"output={out}",
    )  # fmt: skip
    assert code == 0 and "4 face(s) classified" in printed
    rows = pd.read_csv(out, keep_default_na=False).set_index(
        pd.read_csv(out)["file"].map(lambda f: Path(f).name)
    )
    for name, message in expected.items():
        assert message in rows.loc[name, "note"] + rows.loc[name, "error"], name
        assert message in " ".join(printed.split()), name  # and on the screen
    assert rows.loc["huge.png", "emotion"] == ""


def test_evaluate_reframe_scores_the_same_images_reframed_side_by_side(model, tmp_path, capsys):
    uri, tracking, _ = model
    folder = labelled_folder(tmp_path / "mine", {"Happiness": 4, "sadness": 4})
    out = tmp_path / "report"
    code, printed, _ = run_cli(
        capsys, "evaluate", tracking, f"folder={folder}", f"model_uri={uri}",
        f"output_dir={out}", "reframe=default",
    )  # fmt: skip
    assert code == 0 and "framing check" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"original", "reframed"}
    assert set(metrics["reframed"]) == set(metrics["original"])
    assert (out / "report_reframed.txt").read_text().strip()


def test_evaluate_takes_any_option_of_the_reframe_group_and_names_them_when_misspelt(
    model, tmp_path, capsys
):
    uri, tracking, _ = model
    folder = labelled_folder(tmp_path / "mine", {"Happiness": 3, "sadness": 3})
    out = tmp_path / "report"
    common = ["evaluate", tracking, f"folder={folder}", f"model_uri={uri}"]
    code, printed, _ = run_cli(capsys, *common, f"output_dir={out}", "reframe=both")
    assert code == 0 and "as taken and tightened" in " ".join(printed.split())
    assert set(json.loads((out / "metrics.json").read_text())) == {
        "original", "reframed", "tightened",
    }  # fmt: skip
    code, _, error = run_cli(capsys, *common, "reframe=sideways")
    assert (
        code == 2
        and "reframe" in error
        and all(option in error for option in ("both", "default", "none", "tighter"))
    )


def test_evaluate_names_each_odd_picture_and_what_was_done(model, tmp_path, capsys):
    uri, tracking, _ = model
    folder = labelled_folder(tmp_path / "mine", {"Happiness": 3, "sadness": 3})
    expected = odd_pictures(tmp_path / "odd")
    for name in expected:
        (tmp_path / "odd" / name).rename(folder / "Happiness" / name)
    code, printed, _ = run_cli(
        capsys, "evaluate", tracking, f"folder={folder}", f"model_uri={uri}",
        f"output_dir={tmp_path / 'report'}",
    )  # fmt: skip
    flat = " ".join(printed.split())
    assert code == 0
    for name, message in expected.items():
        assert f"{name}: {message}" in flat, name
    report = pd.read_csv(tmp_path / "report" / "report.csv", index_col=0)
    assert report.loc["happiness", "support"] == 3 + 4  # the huge one is left out


# A classifier logged by fersweep 0.3: its models-from-code file, word for word, and the
# `_target_`s its preprocessing settings name (the face step's included).
MODEL_CODE_0_3 = """import mlflow

from fersweep.serving import EmotionClassifierModel

mlflow.models.set_model(EmotionClassifierModel())
"""
TARGETS_0_3 = {
    "fersweep.data.preprocess.Preprocessor",
    "fersweep.data.face.FaceStep",
    "fersweep.data.face.HaarCascade",
}


def targets(settings) -> set[str]:
    if not isinstance(settings, dict):
        return set()
    own = {settings["_target_"]} if "_target_" in settings else set()
    return own.union(*(targets(value) for value in settings.values()))


def test_a_classifier_logged_by_0_3_still_loads_and_answers(face_model, tmp_path, capsys):
    """Built as 0.3 logged it, but with no copy of the 0.3 package beside it: today's package
    must serve its model code and rebuild its preprocessing from its `_target_`s."""
    uri, tracking = face_model
    mlflow.set_tracking_uri(tracking)
    today = mlflow.pyfunc.load_model(uri)
    settings = today.model_config
    assert targets(settings["preprocess"]) == TARGETS_0_3
    code = tmp_path / "serving_model.py"
    code.write_text(MODEL_CODE_0_3)
    network = uri.removesuffix("/classifier") + "/model"
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(
            name="classifier",
            python_model=str(code),
            artifacts={"network": network},
            model_config=settings,
            signature=today.metadata.signature,  # as 0.3 logged it, whole_image among its params
        )
    picture = tmp_path / "wall.png"
    cv2.imwrite(str(picture), synthetic_face(4, np.random.default_rng(1), size=120))
    old = f"runs:/{run.info.run_id}/classifier"
    args = ["predict", tracking, image_list(picture), "whole_image=true"]
    answers = [run_cli(capsys, *args, f"model_uri={model}") for model in (old, uri)]
    assert [code for code, _, _ in answers] == [0, 0], answers[0][2]
    assert answers[0][1] == answers[1][1] and "1 face(s) classified" in answers[0][1]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["predict"], "fersweep predict needs images=..."),
        (["evaluate", "model_uri=runs:/x/classifier"], "fersweep evaluate needs folder=..."),
        (["predict", "images=a.jpg", "imgs=b.jpg"], "Key 'imgs' not in 'PredictCommand'"),
        (["serve", "port=web"], "port=web: Value 'web' of type 'str' could not be converted"),
        (["predict", "images={a: 1}"], "images={'a': 1}: give an image file or folder"),
    ],
)
def test_a_commands_settings_are_checked_and_named_before_any_model_loads(capsys, argv, message):
    code, printed, error = run_cli(capsys, argv[0], "sqlite:///nowhere.db", *argv[1:])
    assert code == 2 and message in " ".join(error.split()) and "Traceback" not in error


def test_outside_a_project_evaluate_takes_no_option_of_its_conf_groups(tmp_path, capsys):
    argv = ["--config-dir", str(tmp_path), "evaluate", f"folder={tmp_path}", "reframe=both"]
    assert cli(argv) == 2
    assert "reframe=both: an option of the project's conf/reframe/" in capsys.readouterr().err


def test_each_model_command_lists_its_keys_in_its_help(capsys):
    with pytest.raises(SystemExit):
        cli(["evaluate", "--help"])
    shown = capsys.readouterr().out
    for key in ("folder=???", "model_uri=models:/fersweep-emotion@champion", "log=false",
                "tracking.tracking_uri=null", "reframe=none"):  # fmt: skip
        assert key in shown, key
