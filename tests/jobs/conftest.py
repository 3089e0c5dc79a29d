"""Fixtures of the job tests: the peer server of the sync tests."""

from __future__ import annotations

from tests.sync.conftest import peer

__all__ = ["peer"]
