"""Fixtures of the Flower tests (the helpers are in ``flower_helpers.py``)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")


@pytest.fixture
def task_identity():
    """Flower's Message constructor reads the process's task identity (set by its runtime)."""
    TaskIdentity = pytest.importorskip("flwr.supercore.task_identity").TaskIdentity
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = 1, 0, 0
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved
