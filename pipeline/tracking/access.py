"""Who may do what on the team server: MLflow basic-auth users and the project's two roles.

- `member`: logs runs to the project's experiment (EDIT there) and reads every registered model (READ);
- `maintainer`: the same, and registers versions and moves aliases (EDIT on registered models), so that
  only a maintainer chooses the `champion`, whose code ``pipeline.score`` runs.

The admin (created by the server's first start) alone creates users. The experiment and the registered
model are created by the admin before anyone else can: the creator of a resource manages it, so a
member who created `bn-fraud` first would own the champion. Clients sign in with MLflow's own
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` or ``~/.mlflow/credentials``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipeline.runtime.errors import StageError
from pipeline.tracking.keys import NOTE

ROLES = ("member", "maintainer")
WORKSPACE = "default"  # MLflow's only workspace when workspaces are off
DESCRIPTIONS = {
    "member": "bn-fraud: logs runs to the project's experiment, reads the registry",
    "maintainer": "bn-fraud: a member who also registers versions and moves the champion alias",
}


def role_name(role: str) -> str:
    """The MLflow role of a project role."""
    return f"bn-fraud-{role}"


def grants(role: str, experiment_id: str) -> list[tuple[str, str, str]]:
    """(resource type, pattern, permission) of a project role."""
    registry = "EDIT" if role == "maintainer" else "READ"
    return [("experiment", experiment_id, "EDIT"), ("registered_model", "*", registry)]


@contextmanager
def signed_in(username: str, password: str) -> Iterator[None]:
    """MLflow's client credentials for the duration (restored after)."""
    keys = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    before = {k: os.environ.get(k) for k in keys}
    os.environ.update(dict(zip(keys, (username, password))))
    try:
        yield
    finally:
        for key, value in before.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def _auth(uri: str) -> Any:
    from mlflow.server import get_app_client

    return get_app_client("basic-auth", tracking_uri=uri)


def prepare(uri: str, experiment: str, registered_model: str, note: str) -> None:
    """As the admin: the project's experiment and registered model exist, and both roles hold exactly
    their grants (idempotent: a restart changes nothing)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment, tags={NOTE: note})
    try:
        client.create_registered_model(registered_model)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    auth = _auth(uri)
    existing = {r.name: r for r in auth.list_roles(WORKSPACE)}
    for role in ROLES:
        made = existing.get(role_name(role)) or auth.create_role(WORKSPACE, role_name(role), DESCRIPTIONS[role])
        held = {(p.resource_type, p.resource_pattern): p for p in auth.list_role_permissions(made.id)}
        for kind, pattern, permission in grants(role, experiment_id):
            if (kind, pattern) not in held:
                auth.add_role_permission(made.id, kind, pattern, permission)
            elif held[(kind, pattern)].permission != permission:
                auth.update_role_permission(held[(kind, pattern)].id, permission)


def _role_id(uri: str, role: str) -> int:
    found = [r for r in _auth(uri).list_roles(WORKSPACE) if r.name == role_name(role)]
    if not found:
        raise StageError(f"the server has no role {role_name(role)}; run `python -m pipeline.server start` again")
    return found[0].id


def add_user(uri: str, name: str, role: str) -> str:
    """Create a user with a generated password and the role; return the password."""
    from mlflow.exceptions import MlflowException

    password = secrets.token_urlsafe(18)
    auth = _auth(uri)
    try:
        auth.create_user(name, password)
    except MlflowException as exc:
        raise StageError(f"cannot create user {name}: {exc.message}") from None
    auth.assign_role(name, _role_id(uri, role))
    return password


def remove_user(uri: str, name: str) -> None:
    """Delete a user (their runs stay)."""
    from mlflow.exceptions import MlflowException

    try:
        _auth(uri).delete_user(name)
    except MlflowException as exc:
        raise StageError(f"cannot remove user {name}: {exc.message}") from None


def users(uri: str) -> list[tuple[str, str]]:
    """(name, project role or `admin`) of every user, by name."""
    from mlflow.server.auth.routes import LIST_USERS
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    answer = verify_rest_response(http_request(get_default_host_creds(uri), LIST_USERS, "GET"), LIST_USERS)
    names = {role_name(r): r for r in ROLES}
    out = []
    for user in answer.json()["users"]:
        held = [names[r["name"]] for r in user.get("roles", []) if r.get("name") in names]
        out.append((user["username"], "admin" if user["is_admin"] else ", ".join(held) or "(no role)"))
    return sorted(out)
