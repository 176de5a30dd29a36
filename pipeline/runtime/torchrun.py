"""Training over several processes: a stage relaunches itself through torchrun when the params ask."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.project.loading import PARAMS_FILE, load_params


def torchrun_command(argv: list[str], module: str = "pipeline.train") -> tuple[list[str], dict[str, str]] | None:
    """`torchrun --standalone --nproc_per_node N -m MODULE ARGS` and its environment (the
    CPU cores shared out between ranks unless OMP_NUM_THREADS is set) when train.distributed.nproc
    is above 1 and this is not already one of torchrun's workers; None otherwise (also when the
    params cannot be read: the stage itself then says why)."""
    if "LOCAL_RANK" in os.environ:
        return None
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--params", type=Path, default=PARAMS_FILE)
    try:
        launch = load_params(parser.parse_known_args(argv)[0].params).train.distributed
    except Exception:  # noqa: BLE001 - reported by stage_main with its fix
        return None
    if launch.nproc == 1:
        return None
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(launch.nproc),
               "--max-restarts", str(launch.max_restarts), "-m", module, *argv]
    return command, {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // launch.nproc)), **os.environ}
