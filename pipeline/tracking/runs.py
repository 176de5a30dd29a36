"""MLflow runs: grouping, lifecycle, orphans, what a run records, searches (the store: ``store``).

Runs are never nested (nested runs start collapsed in the UI): every run of one pipeline
execution carries the tag ``pipeline.group``, and one plain run ``pipeline-<group>`` holds the
report and a description with the verdict. The servable model a run holds is ``tracking.lifecycle``'s.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.project import provenance
from pipeline.runtime.errors import Interrupted
from pipeline.runtime.processes import alive
from pipeline.tracking import store
from pipeline.tracking.keys import (
    COLOR,
    DVC_CHANGED_PARAMS,
    DVC_EXP_NAME,
    GIT_COMMIT,
    GIT_DIRTY,
    GROUP,
    MLFLOW_GIT_COMMIT,
    MODEL,
    NOTE,
    PARAM_LIMIT,
    PIPELINE_COLOR,
    PROCESS,
    ROLE,
)
from pipeline.tracking.tracker import MlflowTracker

log = logging.getLogger(__name__)


def environment_tags() -> dict[str, str]:
    """Tags every run carries: git state, DVC experiment, library versions."""
    import mlflow
    import torch

    state = provenance.git_state()
    tags = {
        MLFLOW_GIT_COMMIT: state.commit,
        GIT_COMMIT: state.commit,
        GIT_DIRTY: str(state.dirty).lower(),
        "torch_version": torch.__version__,
        "mlflow_version": mlflow.__version__,
    }
    if os.environ.get("DVC_EXP_NAME"):
        tags[DVC_EXP_NAME] = os.environ["DVC_EXP_NAME"]
        changed = provenance.changed_params()
        tags[DVC_CHANGED_PARAMS] = ", ".join(f"{k}={v}" for k, v in changed.items()) or "(none)"
    return tags


def find_or_create_run(
    exp_id: str, tags: Mapping[str, str], run_name: str, match: tuple[str, ...], params: Mapping[str, Any] | None = None
) -> str:
    """The finished run whose tags named in ``match`` equal ``tags``; created (with params) if none.

    Call under store_lock() so that parallel workers never create the same run twice.
    """
    client = store.client()
    query = " and ".join(f"tags.`{key}` = '{tags[key]}'" for key in match)
    found = client.search_runs([exp_id], filter_string=query, max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(exp_id, run_name=run_name, tags=dict(tags))
    status = "KILLED"
    try:
        if params:
            log_params(run.info.run_id, params)
        status = "FINISHED"
    finally:
        client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def pipeline_run_name(group: str) -> str:
    """The name of a group's pipeline run: the whole group id, as everywhere else."""
    return f"pipeline-{group}"


def pipeline_run(exp_id: str, group: str, tags: Mapping[str, str]) -> str:
    """The group's pipeline run (it will hold the report and the verdict), created on first use."""
    note = (
        f"Pipeline execution `{group}`. Its model and reference runs carry the tag "
        f"`pipeline.group = '{group}'`; the report stage writes the verdict here."
    )
    return find_or_create_run(
        exp_id,
        {**tags, GROUP: group, ROLE: "pipeline", NOTE: note, COLOR: PIPELINE_COLOR},
        pipeline_run_name(group),
        (GROUP, ROLE),
    )


def adopt_launcher(group: str) -> bool:
    """Under `mlflow run`, file the launcher's own run in this pipeline's group.

    `mlflow run` creates a run and announces it in MLFLOW_RUN_ID. Models are never logged into
    it; it is tagged as a launcher of this group, with a description saying where its models are.
    """
    launcher = os.environ.get("MLFLOW_RUN_ID")
    if not launcher:
        return False
    client = store.client()
    if client.get_run(launcher).data.tags.get(ROLE) not in (None, "launcher"):
        return False  # one of ours (e.g. the pipeline run itself): leave it alone
    client.set_tag(launcher, GROUP, group)
    client.set_tag(launcher, ROLE, "launcher")
    client.set_tag(
        launcher,
        NOTE,
        f"Started by `mlflow run`. Its models are the runs with "
        f"`pipeline.group = '{group}'`; the verdict is in run "
        f"`{pipeline_run_name(group)}`.",
    )
    return True


@contextmanager
def open_model_run(
    experiment: str,
    run_name: str,
    group: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    resume_run_id: str | None = None,
) -> Iterator[MlflowTracker]:
    """A model run in the group (its pipeline run created if needed); FAILED if the block raises,
    KILLED on SIGINT/SIGTERM. With ``resume_run_id``, that run (of a crashed process, restarted by
    torchrun) goes on instead. Only the client API with explicit run ids: several model runs may be
    open at once (a stack of models), and the run `mlflow run` announces in MLFLOW_RUN_ID is never
    resumed."""
    base = environment_tags()
    with store.store_lock():
        exp_id = store.experiment_id(experiment)
        end_orphaned_runs(exp_id, keep=resume_run_id)
        pipeline_run(exp_id, group, base)
        adopt_launcher(group)
        if resume_run_id is None:
            run_id = (
                store.client()
                .create_run(exp_id, run_name=run_name, tags={**base, **tags, GROUP: group, PROCESS: _this_process()})
                .info.run_id
            )
        else:
            run_id = resume_run_id
            store.client().set_tag(run_id, PROCESS, _this_process())
    tracker = MlflowTracker(run_id)
    status = "FAILED"
    try:
        if resume_run_id is None:
            log_params(run_id, params)
        yield tracker
        status = "FINISHED"
    except (Interrupted, KeyboardInterrupt):
        status = "KILLED"
        raise
    finally:
        try:
            tracker.flush()
        finally:
            store.client().set_terminated(run_id, status)


def log_params(run_id: str, params: Mapping[str, Any]) -> None:
    """Log params in as few calls as the API allows (100 a call), values cut to its length limit."""
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for start in range(0, len(items), PARAM_LIMIT):
        store.client().log_batch(run_id, params=items[start : start + PARAM_LIMIT])


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def end_orphaned_runs(exp_id: str, keep: str | None = None) -> list[str]:
    """Mark KILLED the RUNNING runs whose process, on this host, no longer exists (it got SIGKILL or
    ran out of memory, and could not end its run), except ``keep`` (about to be resumed); return
    their ids."""
    host = socket.gethostname()
    client = store.client()
    query = f"attributes.status = 'RUNNING' and tags.`{PROCESS}` LIKE '{host}:%'"
    ended = []
    for run in client.search_runs([exp_id], filter_string=query, max_results=1000):
        if run.info.run_id == keep:
            continue
        if alive(int(run.data.tags[PROCESS].rsplit(":", 1)[1])):
            continue  # its own, a parallel worker's or another user's
        client.set_tag(
            run.info.run_id,
            NOTE,
            f"Its process ({run.data.tags[PROCESS]}) died without ending "
            "the run (killed with SIGKILL, or out of memory); marked KILLED.",
        )
        client.set_terminated(run.info.run_id, "KILLED")
        ended.append(run.info.run_id)
    return ended


def run_info(run_id: str) -> dict[str, Any]:
    """What other stages need to find a run again (and its group's pipeline run)."""
    client = store.client()
    run = client.get_run(run_id)
    group = run.data.tags.get(GROUP)
    query = f"tags.`{GROUP}` = '{group}' and tags.`{ROLE}` = 'pipeline'"
    found = client.search_runs([run.info.experiment_id], filter_string=query, max_results=1)
    return {
        "run_id": run_id,
        "experiment_id": run.info.experiment_id,
        "tracking_uri": store.tracking_uri(),
        "pipeline_run_id": found[0].info.run_id if found else None,
        "group": group,
        "run_name": run.info.run_name,
    }


def log_results(
    run_id: str, metrics: Mapping[str, float], artifacts: tuple[Path, ...] = (), artifact_path: str | None = None
) -> None:
    """Add step-less metrics (batched) and artifact files or folders (under ``artifact_path``) to a run."""
    from mlflow.entities import Metric

    client = store.client()
    stamp = int(time.time() * 1000)
    store.log_metrics(run_id, [Metric(k, float(v), stamp, 0) for k, v in metrics.items()])
    for path in artifacts:
        if path.is_dir():
            client.log_artifacts(run_id, str(path), artifact_path)
        else:
            client.log_artifact(run_id, str(path), artifact_path)


def reference_run(experiment: str, group: str, name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
    """The group's run for a reference model: reused if present, else created."""
    all_tags = {**environment_tags(), **tags, GROUP: group, ROLE: "reference", MODEL: name}
    with store.store_lock():
        return find_or_create_run(store.experiment_id(experiment), all_tags, name, (GROUP, MODEL, ROLE), params)


def absent(run_ids: Iterable[str]) -> set[str]:
    """Those of these run ids that this store does not hold: outputs restored from DVC's cache that were
    tracked in another store (a teammate's, or this one before it was deleted)."""
    from mlflow.exceptions import MlflowException

    client, missing = store.client(), set()
    for run_id in sorted(set(run_ids)):
        try:
            client.get_run(run_id)
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            missing.add(run_id)
    return missing


def warn_absent(stage: str, missing: set[str], what: str) -> None:
    """One line saying which tracked outputs this store lacks the runs of, and that the stage goes on without."""
    if missing:
        log.warning(
            "%s: %d %s run(s) named by this stage's inputs are not in this MLflow store (%s), e.g. %s: those "
            "outputs came from DVC's cache or an earlier store; they are left out of MLflow here, their files "
            "and numbers are used as they are (point MLFLOW_TRACKING_URI at the store that tracked them to "
            "link them)",
            stage,
            len(missing),
            what,
            store.tracking_uri(),
            sorted(missing)[0],
        )


def set_tag(run_id: str, key: str, value: str) -> None:
    """Set one tag of a run."""
    store.client().set_tag(run_id, key, value)


def log_text(run_id: str, text: str, name: str) -> None:
    """Store a text file as an artifact of a run."""
    store.client().log_text(run_id, text, name)


def describe_run(run_id: str, note: str) -> None:
    """Set a run's description (the UI's "Description", markdown)."""
    store.client().set_tag(run_id, NOTE, note)


def describe_experiment(exp_id: str, latest: str) -> None:
    """The experiment's description: the latest execution's verdict and link first (visible while the
    description is collapsed), then what the experiment holds."""
    store.client().set_experiment_tag(exp_id, NOTE, f"{latest}\n\n{store.EXPERIMENT_NOTE}")


def search(
    experiment: str, filter_string: str, order_by: list[str] | None = None, max_results: int = 10_000
) -> list[Any]:
    """Runs of an experiment matching a filter (empty when the experiment does not exist)."""
    client = store.client()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs(
        [found.experiment_id], filter_string=filter_string, order_by=order_by, max_results=max_results
    )


def metric_steps(run_id: str, key: str) -> list[tuple[int, float]]:
    """Every logged (step, value) of one metric, in step order."""
    history = store.client().get_metric_history(run_id, key)
    return [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)]


def log_training_data(run_id: str, source: Path, name: str, features: dict[str, str], label: str, digest: str) -> None:
    """Record the rows a model trained on as its run's dataset input: the table file they are rows of,
    the part's name (``r3/train``: replicate 3's training part), the table's content hash and schema
    (``features``: each column's MLflow type; declared, not inferred from 100,000s of rows: that took
    seconds per model)."""
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.types import ColSpec, Schema
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "can be interpreted in multiple ways": a local file either way
        schema = Schema([ColSpec(kind, name) for name, kind in features.items()] + [ColSpec("integer", label)])
        dataset = MetaDataset(
            resolve_dataset_source(str(source.resolve())), name=name, digest=digest[:20], schema=schema
        )
        used = DatasetInput(dataset=dataset._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, "training")])
        store.client().log_inputs(run_id, datasets=[used])
