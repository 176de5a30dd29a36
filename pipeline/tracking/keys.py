"""Every MLflow tag and metric key the pipeline writes or searches for: one home, no string twice."""

from __future__ import annotations

# Tags of the pipeline's own runs
ROLE = "pipeline.role"  # model | tuning | reference | pipeline | launcher | table | suite
GROUP = "pipeline.group"  # one pipeline execution: same data, params, training code and DVC experiment
MODEL = "pipeline.model"  # the model's name (batchnorm-s0), as in file names
VARIANT = "pipeline.variant"
SEED = "pipeline.seed"
LR = "pipeline.lr"
TRIAL = "pipeline.trial"  # tuning runs: the Optuna trial they belong to (one run per tuning seed)
PROCESS = "pipeline.process"  # host:pid of the process that owns a model run while it runs
SELECTED = "pipeline.selected"  # on tuning runs: "true" for the trial chosen for the variant
DIVERGED_AT = "pipeline.diverged_at"  # a tuning run whose loss became NaN or infinite at this epoch
RESUMED_AFTER = "pipeline.resumed_after_epoch"  # a run that torchrun restarted, going on after this epoch
TABLE = "pipeline.table"  # a suite's table: on its experiment's runs and on the table's own run
SUITE = "pipeline.suite"  # the suite a table run belongs to
SUITE_KEY = "pipeline.suite_key"  # what a table's result depends on (its settings, the code, the params)
DATA_SHA256 = "data.sha256"
DEVICE = "device"

# Provenance tags
GIT_COMMIT, MLFLOW_GIT_COMMIT, GIT_DIRTY = "git.commit", "mlflow.source.git.commit", "git.dirty"
DVC_EXP_NAME, DVC_CHANGED_PARAMS = "dvc.exp_name", "dvc.changed_params"

# MLflow's own tags that its UI reads
NOTE = "mlflow.note.content"  # a run's or experiment's description (markdown)
COLOR = "mlflow.runColor"
RUN_NAME = "mlflow.runName"
VIEW_PREFIX = "mlflow.sharedViewState."  # the saved views of an experiment's runs page
PIPELINE_COLOR = "#3b3b3b"

# The few metrics a model run holds. Per-epoch keys (steps 1..N) are logged by train and never
# reused for anything else; evaluation and summary keys are logged once. Every other number is in
# the run's artifacts (history.csv, evaluation/<model>.json).
EPOCH_KEYS = (
    "train_loss",
    "train_loss_eval",  # the loss claim's: eval mode, unweighted, a fixed sample of the training rows
    "val_loss",
    "val_ap",
    "val_recall",
    "val_precision",
    "val_accuracy",
    "epoch_seconds",
)
EVALUATION_KEYS = ("test_ap", "test_recall", "test_precision", "test_f1", "test_roc_auc", "test_accuracy", "threshold")
MONEY_KEYS = ("test_value_recall", "test_alert_precision", "test_savings_vs_none")  # when the data has amounts
SUMMARY_KEYS = ("best_val_ap", "best_epoch", "epochs_run")
BATCH_LIMIT = 1000  # metrics per log_batch call: the tracking API's limit
PARAM_LIMIT = 100  # params per log_batch call
