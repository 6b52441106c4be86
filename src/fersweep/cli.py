"""The `fersweep` command: predict, evaluate and serve with a trained model."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from fersweep.errors import FersweepError

DEFAULT_MODEL = "models:/fersweep-emotion@champion"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.command(args)
    except FersweepError as error:  # a clear line, never a stack trace
        print(f"fersweep: error: {error}", file=sys.stderr)
        return 2


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="fersweep", description=__doc__)
    root.add_argument("--config-dir", default="conf", help="the project's Hydra configs (conf/)")
    root.add_argument(
        "--tracking-uri",
        help="MLflow store; default: MLFLOW_TRACKING_URI, "
        "else the project's tracking config (sqlite:///mlruns/mlflow.db)",
    )
    commands = root.add_subparsers(required=True)

    predict = commands.add_parser("predict", help="emotions of images or folders of images")
    predict.add_argument("paths", nargs="+", help="image files or folders")
    predict.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"MLflow model URI ({DEFAULT_MODEL})"
    )
    predict.add_argument(
        "--output", help="write the table (one row per face) to a .csv or .json file"
    )
    predict.add_argument(
        "--whole-image",
        action="store_true",
        help="classify the whole picture where no face is found (or none big enough)",
    )
    predict.add_argument(
        "--annotate", metavar="DIR", help="write copies of the images with boxes and emotions"
    )
    predict.set_defaults(command=predict_command)

    evaluate = commands.add_parser("evaluate", help="score a model on a DIR/<emotion>/*.jpg folder")
    evaluate.add_argument("folder", help="labelled folder: one subfolder per emotion")
    evaluate.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"MLflow model URI ({DEFAULT_MODEL})"
    )
    evaluate.add_argument("--log", action="store_true", help="record it as an MLflow run")
    evaluate.add_argument(
        "--reframe",
        action="store_true",
        help="also score the images placed into larger pictures (conf/reframe/default.yaml)",
    )
    evaluate.add_argument(
        "--output-dir",
        help="where the report and confusion matrix go (default outputs/evaluate/<time>)",
    )
    evaluate.set_defaults(command=evaluate_command)

    serve = commands.add_parser("serve", help="a REST server for the model (mlflow models serve)")
    serve.add_argument("--model", default=DEFAULT_MODEL, help=f"MLflow model URI ({DEFAULT_MODEL})")
    serve.add_argument(
        "--host", default="127.0.0.1", help="bind address (default: this machine only)"
    )
    serve.add_argument("--port", type=int, default=5001)
    serve.set_defaults(command=serve_command)

    server_help = "settings of conf/server.yaml, e.g. server.port=5050 server.auth=true"
    server = commands.add_parser(
        "tracking-server",
        help="the team's MLflow tracking server: PostgreSQL backend, artifacts served by it",
    )
    server.add_argument("overrides", nargs="*", help=server_help)
    server.set_defaults(command=tracking_server_command)
    db = commands.add_parser("db", help="create the tracking server's and the studies' databases")
    db.add_argument("overrides", nargs="*", help=server_help)
    db.set_defaults(command=db_command)
    return root


def tracking_uri(args: argparse.Namespace) -> str:
    if args.tracking_uri:
        return args.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if not (Path(args.config_dir) / "train.yaml").is_file():
        raise FersweepError(
            f"no project configs at --config-dir={args.config_dir}; run from the project folder "
            "or give --tracking-uri (or MLFLOW_TRACKING_URI)"
        )
    from fersweep.config import compose_config

    return compose_config(args.config_dir).tracking.tracking_uri


def predict_command(args: argparse.Namespace) -> int:
    from fersweep.console import show_predictions
    from fersweep.predict import annotate, image_files, predict_files
    from fersweep.tracking.runs import load_classifier

    files = image_files(args.paths)
    model = load_classifier(args.model, tracking_uri(args))
    predictions = predict_files(model, files, whole_image=args.whole_image)
    show_predictions(predictions)
    if args.output:
        write_table(predictions.table, Path(args.output))
    if args.annotate:
        written = annotate(predictions, Path(args.annotate))
        print(f"{len(written)} annotated picture(s) written to {args.annotate}")
    return 0


def write_table(table, path: Path) -> None:
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    elif path.suffix == ".json":
        path.write_text(json.dumps(table.to_dict(orient="records"), indent=2))
    else:
        raise FersweepError(f"--output {path}: use a .csv or .json file name")


def evaluate_command(args: argparse.Namespace) -> int:
    from fersweep.console import show_data_report, show_evaluation, show_framing, show_notes
    from fersweep.data.folder import read_folder
    from fersweep.data.preprocess import FACE_STEPS
    from fersweep.figures import confusion_figure
    from fersweep.predict import evaluate_folder
    from fersweep.tracking.runs import load_classifier

    records, report = read_folder(Path(args.folder))  # a bad folder fails before the model loads
    reframe = reframing(args.config_dir) if args.reframe else None
    uri = tracking_uri(args)
    model = load_classifier(args.model, uri)
    result = evaluate_folder(model, Path(args.folder), records, report, reframe)
    show_notes(result.predictions, skip=FACE_STEPS)  # the face step's outcomes are counted
    show_data_report(result.report, {})
    title = f"{args.folder} ({', '.join(result.emotions_present)})"
    show_evaluation(result.evaluation, title)
    if result.reframed is not None:
        show_evaluation(result.reframed, f"{title}, reframed")
        show_framing(result.evaluation, result.reframed)
    output = Path(args.output_dir or f"outputs/evaluate/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    output.mkdir(parents=True, exist_ok=True)
    result.evaluation.per_class.to_csv(output / "report.csv")
    (output / "report.txt").write_text(result.evaluation.text)
    metrics = {"original": result.evaluation.metrics}
    if result.reframed is not None:
        metrics["reframed"] = result.reframed.metrics
        (output / "report_reframed.txt").write_text(result.reframed.text)
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    confusion_figure(result.evaluation, normalised=True).savefig(output / "confusion.png", dpi=100)
    print(f"report and confusion matrix written to {output}")
    if args.log:
        log_evaluation_run(uri, args, result)
    return 0


def reframing(config_dir: str):
    """The framing check's settings, from the project's conf/reframe/default.yaml."""
    from fersweep.config import build, compose_config

    return build(compose_config(config_dir, ["reframe=default"]).data.reframe)


def log_evaluation_run(uri: str, args: argparse.Namespace, result) -> None:
    from fersweep.config import build, compose_config
    from fersweep.tracking import artifacts

    cfg = compose_config(
        args.config_dir,
        [f"tracking.tracking_uri='{uri}'", "tracking.experiment=fersweep-evaluations"],
    )
    tracker = build(cfg.tracking)
    tags = {
        "kind": "evaluation",
        "model_uri": args.model,
        "folder": str(Path(args.folder).resolve()),
    }
    with tracker.run(f"evaluate {Path(args.folder).name}", tags=tags) as run:
        artifacts.log_evaluation(result.evaluation, "eval")
        if result.reframed is not None:
            artifacts.log_evaluation(result.reframed, "eval_reframed")
        artifacts.log_dict(result.report.as_dict(), "data/data_report.json")
    print(f"logged as MLflow run {run.info.run_id} in experiment fersweep-evaluations")


def serve_command(args: argparse.Namespace) -> int:
    from fersweep.tracking.runs import serve_model

    return serve_model(args.model, tracking_uri(args), args.host, args.port)


def tracking_server(args: argparse.Namespace):
    from fersweep.config import build, compose_config

    cfg = compose_config(args.config_dir, args.overrides, config_name="server")
    return build(cfg.server), cfg


def tracking_server_command(args: argparse.Namespace) -> int:
    server, _ = tracking_server(args)
    return server.run()


def db_command(args: argparse.Namespace) -> int:
    from fersweep.study_storage import hide_password

    server, _ = tracking_server(args)
    for url, created in server.ensure_databases().items():
        print(f"{'created' if created else 'exists '} {hide_password(url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
