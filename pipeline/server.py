"""The team's shared MLflow server on one host: runs in PostgreSQL, artifacts proxied, login required.

    python -m pipeline.server start [--port 5000] [--state-dir .team-server] [--artifacts DEST]
                                    [--host 0.0.0.0 --public-url https://mlflow.example.com]
    python -m pipeline.server stop  [--state-dir .team-server]
    python -m pipeline.server user add NAME --role member|maintainer | user remove NAME | user list

``start`` initialises a PostgreSQL cluster in ``<state-dir>/pgdata`` with a generated password
(scram-sha-256; a cluster of an earlier version, which trusted local connections, is migrated with
every run kept), creates and migrates the databases, starts ``mlflow server --app-name basic-auth``
with ``--artifacts-destination`` (a folder, or ``s3://bucket/prefix`` with ``MLFLOW_S3_ENDPOINT_URL``)
and prints the URI to export as ``MLFLOW_TRACKING_URI``. The first start generates the admin password
and the server's secret key, keeps them in ``<state-dir>/secrets.json`` (readable only by its owner)
and prints the password once. It is idempotent: a second call restarts only what is down. ``stop``
stops both; the data stay in the state folder. ``user`` manages who may sign in, as the admin.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.hosting import launch, postgres, secrets
from pipeline.hosting.secrets import ADMIN
from pipeline.project.params import PARAMS_FILE, load_params
from pipeline.runtime.errors import StageError, UserError
from pipeline.tracking import access, store

DEFAULT_STATE_DIR = Path(".team-server")
PROJECT_PARAMS = Path(__file__).resolve().parents[1] / PARAMS_FILE  # the checkout's, wherever the server starts


def start(args: argparse.Namespace) -> tuple[str, str | None]:
    """Start what is down; return the tracking URI, and the admin password when it was just made."""
    login, state = not args.no_login, args.state_dir
    launch.check_exposure(args.host, login, args.public_url, args.unsafe_no_login_on_network)
    flags = launch.network_flags(args.port, args.public_url)
    names = load_params(args.params).mlflow
    state.mkdir(parents=True, exist_ok=True)
    found, created = secrets.load_or_create(state)
    secrets.write_pgpass(state, found)
    uris = postgres.start_postgres(state, args.pg_port, found)
    uri = f"http://127.0.0.1:{args.port}"
    if launch.running(state) is None:
        env = launch.server_environment(state, found, uris["mlflow_auth"] if login else None)
        flags += ["--host", args.host, "--workers", str(args.workers), *(["--app-name", "basic-auth"] if login else [])]
        artifacts = args.artifacts or str((state / "artifacts").resolve())
        launch.start_server(
            state,
            env,
            uris["mlflow"],
            artifacts,
            flags,
            args.port,
            {"backend": uris["mlflow"], "artifacts": artifacts, "pg_port": args.pg_port, "login": login},
        )
    if login:
        with access.signed_in(ADMIN, found.admin_password):
            access.prepare(uri, names.experiment, names.registered_model, store.EXPERIMENT_NOTE)
    return uri, found.admin_password if created and login else None


def stop(state: Path) -> None:
    """Stop the MLflow server and PostgreSQL; keep their data."""
    launch.stop_server(state)
    postgres.stop_postgres(state)


def _admin_uri(state: Path) -> tuple[str, secrets.Secrets]:
    """The running server's URI and the admin's secrets, for user management."""
    info = launch.running(state)
    found = secrets.load(state)
    if info is None or found is None:
        raise StageError(f"no team server runs from {state}/; start it with `python -m pipeline.server start`")
    if not info.get("login"):
        raise StageError("the server runs without login (--no-login); restart it without that flag to manage users")
    return info["uri"], found


def user(args: argparse.Namespace) -> str:
    """Add, remove or list users as the admin; return what to print."""
    uri, found = _admin_uri(args.state_dir)
    with access.signed_in(ADMIN, found.admin_password):
        if args.user_action == "add":
            password = access.add_user(uri, args.name, args.role)
            return (
                f"user {args.name} ({args.role}) created; their password, shown once and stored nowhere: "
                f"{password}\n  they sign in with MLFLOW_TRACKING_USERNAME={args.name} and "
                "MLFLOW_TRACKING_PASSWORD=<password> (or ~/.mlflow/credentials)"
            )
        if args.user_action == "remove":
            access.remove_user(uri, args.name)
            return f"user {args.name} removed (their runs stay)"
        return "\n".join(f"{name}\t{role}" for name, role in access.users(uri))


def _start_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=5000, help="MLflow server port (default 5000)")
    parser.add_argument("--pg-port", type=int, default=15432, help="PostgreSQL port (default 15432)")
    parser.add_argument(
        "--artifacts", help="artifact destination: a folder or s3://bucket/prefix (default <state-dir>/artifacts)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on; 0.0.0.0 to serve other machines (needs login and --public-url)",
    )
    parser.add_argument(
        "--public-url",
        help="the address clients use (behind a TLS proxy), e.g. "
        "https://mlflow.example.com: sets the allowed hosts and CORS origins",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-login", action="store_true", help="serve without login (127.0.0.1 only)")
    parser.add_argument(
        launch.UNSAFE_FLAG,
        action="store_true",
        help="allow --no-login with a --host other machines reach (anyone may then write)",
    )
    parser.add_argument(
        "--params",
        type=Path,
        default=PROJECT_PARAMS,
        help="params file naming the project's experiment and registered model (default: the project's params.yaml)",
    )


def parser() -> argparse.ArgumentParser:
    """The command line: start, stop, user add/remove/list."""
    top = argparse.ArgumentParser(prog="python -m pipeline.server", description=__doc__.splitlines()[0])
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="PostgreSQL data, secrets, artifacts and logs (default .team-server/)",
    )
    actions = top.add_subparsers(dest="action", required=True)
    _start_arguments(actions.add_parser("start", parents=[state], help="start what is down"))
    actions.add_parser("stop", parents=[state], help="stop the server and PostgreSQL")
    users = actions.add_parser("user", help="manage who may sign in").add_subparsers(dest="user_action", required=True)
    added = users.add_parser("add", parents=[state], help="create a user with a generated password")
    added.add_argument("name")
    added.add_argument("--role", choices=access.ROLES, required=True)
    users.add_parser("remove", parents=[state], help="delete a user").add_argument("name")
    users.add_parser("list", parents=[state], help="every user and their role")
    return top


def main(argv: list[str] | None = None) -> int:
    """Command line (see module docstring)."""
    args = parser().parse_args(argv)
    try:
        if args.action == "stop":
            stop(args.state_dir)
            print(f"stopped the MLflow server and PostgreSQL; their data stay in {args.state_dir}/")
            return 0
        if args.action == "user":
            print(user(args))
            return 0
        uri, password = start(args)
    except UserError as exc:
        print(f"pipeline.server: {exc}", file=sys.stderr)
        return 2
    login = json.loads((args.state_dir / launch.INFO).read_text()).get("login")
    print(
        f"MLflow server running at {uri} (runs in PostgreSQL, artifacts proxied, "
        f"{'login required' if login else 'NO LOGIN'}); use it with:\n  export MLFLOW_TRACKING_URI={uri}"
    )
    if login:
        print(
            "  export MLFLOW_TRACKING_USERNAME=<you> MLFLOW_TRACKING_PASSWORD=<your password>  "
            "(or ~/.mlflow/credentials); the admin adds users: python -m pipeline.server user add NAME --role member"
        )
    if password:
        print(f"admin password (shown once; kept in {args.state_dir / secrets.FILE}, readable only by you): {password}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
