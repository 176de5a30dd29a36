"""How processes that run at once share this machine's cores."""

from __future__ import annotations

import os

import pytest

from pipeline.runtime.processes import sharing_cores


def test_the_cores_are_shared_out_unless_the_user_set_the_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert sharing_cores(2)["OMP_NUM_THREADS"] == "4"
    assert sharing_cores(3)["OMP_NUM_THREADS"] == "2"  # whole threads, rounded down
    assert sharing_cores(16)["OMP_NUM_THREADS"] == "1"  # never none
    assert sharing_cores(1)["OMP_NUM_THREADS"] == "8"
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: one each
    assert sharing_cores(2)["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    shared = sharing_cores(2)
    assert shared["OMP_NUM_THREADS"] == "3" and shared["SOMETHING_ELSE"] == "kept"
