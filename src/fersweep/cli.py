"""The `fersweep` command: train, then predict, evaluate and serve with a tracked model."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from fersweep.errors import FersweepError

if TYPE_CHECKING:
    from omegaconf import DictConfig


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.command(args)
    except FersweepError as error:  # a clear line, never a stack trace
        print(f"fersweep: error: {error}", file=sys.stderr)
        return 2


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="fersweep",
        description=__doc__,
        epilog="Every command takes Hydra overrides, key=value (`fersweep predict --help` lists "
        "a command's keys); quote values with spaces or commas: images=\"['my photo.jpg']\"",
    )
    root.add_argument("--config-dir", default="conf", help="the project's Hydra configs (conf/)")
    commands = root.add_subparsers(required=True)
    for name, text in (
        ("predict", "emotions of images or folders of images"),
        ("evaluate", "score a model on a DIR/<emotion>/*.jpg folder"),
        ("serve", "a REST server for the model (mlflow models serve)"),
    ):
        _add_model_command(commands, name, text)
    _add_train(commands)
    _add_tracking_server(commands)
    return root


def _add_model_command(commands: argparse._SubParsersAction, name: str, text: str) -> None:
    """A command that uses a tracked model; its keys come from fersweep.config.commands."""
    from fersweep.config.commands import settings_help

    command = commands.add_parser(
        name,
        help=text,
        description=text,
        epilog=settings_help(name),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument("overrides", nargs="*", help="key=value settings, listed below")
    command.set_defaults(command=COMMANDS[name], name=name)


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


def command_config(args: argparse.Namespace) -> DictConfig:
    """The command's config from its overrides, with the MLflow store it reads resolved."""
    from fersweep.config.compose import command_tracking_uri, compose_command

    cfg = compose_command(args.config_dir, args.name, args.overrides)
    cfg.tracking.tracking_uri = command_tracking_uri(cfg, args.config_dir)
    return cfg


def predict_command(args: argparse.Namespace) -> int:
    from fersweep.tasks.predict import predict

    return predict(command_config(args))


def evaluate_command(args: argparse.Namespace) -> int:
    from fersweep.tasks.evaluate import evaluate

    return evaluate(command_config(args), args.config_dir)


def train_command(args: argparse.Namespace) -> int:
    from fersweep.config.aliases import canonical
    from fersweep.config.compose import compose_config
    from fersweep.tasks.train import train

    overrides = canonical(args.overrides)  # the seed report's short names, as train.py takes
    cfg = compose_config(args.config_dir, overrides)
    result = train(cfg, overrides)
    print(f"{cfg.eval_split}/macro_f1 = {result.metrics[f'{cfg.eval_split}/macro_f1']:.4f}")
    return 0


def serve_command(args: argparse.Namespace) -> int:
    from fersweep.tracking.registry import serve_model

    cfg = command_config(args)
    return serve_model(cfg.model_uri, cfg.tracking.tracking_uri, cfg.host, cfg.port, cfg.workers)


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


COMMANDS = {"predict": predict_command, "evaluate": evaluate_command, "serve": serve_command}

if __name__ == "__main__":
    sys.exit(main())
