"""The `fersweep` command: predict, evaluate and serve with a trained model."""

from __future__ import annotations

import argparse
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
    _add_predict(commands)
    _add_evaluate(commands)
    _add_serve(commands)
    _add_train(commands)
    _add_tracking_server(commands)
    return root


def _add_predict(commands: argparse._SubParsersAction) -> None:
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


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("evaluate", help="score a model on a DIR/<emotion>/*.jpg folder")
    evaluate.add_argument("folder", help="labelled folder: one subfolder per emotion")
    evaluate.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"MLflow model URI ({DEFAULT_MODEL})"
    )
    evaluate.add_argument("--log", action="store_true", help="record it as an MLflow run")
    evaluate.add_argument(
        "--reframe",
        nargs="?",
        const="default",
        metavar="OPTION",
        help="also score the images reframed as an option of the config group conf/reframe/ "
        "says (Hydra lists them if one is misspelt): placed into larger pictures (default, "
        "also the flag alone), cut tighter (tighter), both ways (both), not at all (none)",
    )
    evaluate.add_argument(
        "--output-dir",
        help="where the report and confusion matrix go (default outputs/evaluate/<time>)",
    )
    evaluate.set_defaults(command=evaluate_command)


def _add_serve(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="a REST server for the model (mlflow models serve)")
    serve.add_argument("--model", default=DEFAULT_MODEL, help=f"MLflow model URI ({DEFAULT_MODEL})")
    serve.add_argument(
        "--host", default="127.0.0.1", help="bind address (default: this machine only)"
    )
    serve.add_argument("--port", type=int, default=5001)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes answering requests, sharing this machine's cores (default 1)",
    )
    serve.set_defaults(command=serve_command)


def _add_train(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train", help="one tracked training run, as `python train.py <overrides>` trains it"
    )
    train.add_argument(
        "overrides", nargs="*", help="config overrides, e.g. model.filters=32 balancing=balanced"
    )
    train.set_defaults(command=train_command)


def _add_tracking_server(commands: argparse._SubParsersAction) -> None:
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
    proxy = commands.add_parser(
        "grpc-proxy",
        help="Optuna's gRPC storage proxy in front of the studies' database, for sweeps with "
        "many jobs (sweep.storage=grpc://host:port)",
    )
    proxy.add_argument(
        "overrides", nargs="*", help="settings of conf/server.yaml, e.g. proxy.port=13001"
    )
    proxy.set_defaults(command=grpc_proxy_command)


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
    from fersweep.config.compose import compose_config

    return compose_config(args.config_dir).tracking.tracking_uri


def predict_command(args: argparse.Namespace) -> int:
    from fersweep.tasks.predict import predict

    return predict(
        args.paths, args.model, tracking_uri(args), args.whole_image, args.output, args.annotate
    )


def evaluate_command(args: argparse.Namespace) -> int:
    from fersweep.tasks.evaluate import evaluate

    output = Path(args.output_dir or f"outputs/evaluate/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    return evaluate(
        folder=Path(args.folder),
        model_uri=args.model,
        tracking_uri=tracking_uri(args),
        config_dir=args.config_dir,
        reframe=args.reframe,
        output=output,
        log=args.log,
    )


def train_command(args: argparse.Namespace) -> int:
    from fersweep.config.aliases import canonical
    from fersweep.config.compose import compose_config
    from fersweep.tasks.train import train

    overrides = canonical(args.overrides)  # the seed report's short names, as train.py takes
    if args.tracking_uri:
        overrides.append(f"tracking.tracking_uri='{args.tracking_uri}'")
    cfg = compose_config(args.config_dir, overrides)
    result = train(cfg, overrides)
    print(f"{cfg.eval_split}/macro_f1 = {result.metrics[f'{cfg.eval_split}/macro_f1']:.4f}")
    return 0


def serve_command(args: argparse.Namespace) -> int:
    from fersweep.tracking.registry import serve_model

    return serve_model(args.model, tracking_uri(args), args.host, args.port, args.workers)


def tracking_server(args: argparse.Namespace):
    from fersweep.config.compose import build, compose_config

    cfg = compose_config(args.config_dir, args.overrides, config_name="server")
    return build(cfg.server), cfg


def tracking_server_command(args: argparse.Namespace) -> int:
    server, _ = tracking_server(args)
    return server.run()


def grpc_proxy_command(args: argparse.Namespace) -> int:
    from fersweep.config.compose import build, compose_config

    cfg = compose_config(args.config_dir, args.overrides, config_name="server")
    return build(cfg.proxy).run()


def db_command(args: argparse.Namespace) -> int:
    from fersweep.services.postgres import hide_password

    server, _ = tracking_server(args)
    for url, created in server.ensure_databases().items():
        print(f"{'created' if created else 'exists '} {hide_password(url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
