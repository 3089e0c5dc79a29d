"""The page cache of a SQLite connection while it streams a scan (``engine.scan_cache``,
https://www.sqlite.org/pragma.html#pragma_cache_size): small during the scan, the store's
64 MiB again once the connection is back in the pool, on both kinds of pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_service.storage.engine import (
    SQLITE_CACHE_KIB,
    SQLITE_SCAN_CACHE_KIB,
    create_engine,
    scan_cache,
)


@pytest.mark.parametrize("per_thread", [False, True], ids=["pooled", "per-thread"])
def test_scan_cache_is_given_back(tmp_path: Path, per_thread: bool) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'fhir.sqlite3'}", per_thread=per_thread)
    try:
        with engine.connect() as conn:
            scanned = conn.connection.driver_connection
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -SQLITE_CACHE_KIB
            scan_cache(conn)
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -SQLITE_SCAN_CACHE_KIB
        with engine.connect() as conn:
            assert conn.connection.driver_connection is scanned  # the same, from the pool
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -SQLITE_CACHE_KIB
    finally:
        engine.dispose()
