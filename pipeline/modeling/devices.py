"""Which device a training process uses."""

from __future__ import annotations

import torch


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    """`auto` picks CUDA when present, else CPU; `cuda` without a GPU is an error. Under torchrun
    each process on a machine takes the GPU of its local rank."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available; "
                           "use train.device: auto or cpu, or install the CUDA build of torch")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if local_rank >= torch.cuda.device_count():
        raise RuntimeError(f"process {local_rank} has no GPU of its own ({torch.cuda.device_count()} found); "
                           "set train.distributed.nproc to at most the number of GPUs")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)
