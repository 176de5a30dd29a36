"""How a split is cut into batches: every row once per epoch, no batch below the minimum (BatchNorm's
statistics of a few rows are noise, and of one row undefined)."""

from __future__ import annotations


class BatchError(ValueError):
    """The training split cannot be cut into batches of the minimum size."""


def batch_slices(n: int, batch_size: int, min_batch: int) -> list[slice]:
    """Batches of ``batch_size`` rows covering all ``n`` rows; a last batch shorter than
    ``min(min_batch, batch_size)`` joins the one before it, so no batch is ever that small."""
    smallest = min(min_batch, batch_size)
    if n < smallest:
        raise BatchError(f"the training split has {n} rows, fewer than the smallest batch allowed ({smallest}); "
                         "use more data or lower train.min_batch")
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < smallest:
        starts.pop()
    return [slice(start, end) for start, end in zip(starts, [*starts[1:], n])]
