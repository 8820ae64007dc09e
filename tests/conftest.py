"""Shared fixtures: the real public data beside the project, skipping cleanly when absent; a
throwaway PostgreSQL server (skipped where it cannot start)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PANEN_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real public data); the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


def shared_file(*parts: str) -> Path:
    """Path to one real-data file, skipping the calling test when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data file {p} is absent")
    return p


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server for the session (``tests/pgserver.py``); skipped where
    PostgreSQL is not installed or cannot start."""
    from pgserver import PostgresServer, Unavailable

    try:
        server = PostgresServer().start()
    except Unavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")
    yield server
    server.stop()


# --------------------------------------------------------------------------- the shipped AUTP wording
AUTP_WORDING_FILE = Path(__file__).resolve().parents[1] / "configs" / "autp.yaml"


@pytest.fixture(scope="module")
def wording():
    """The shipped AUTP wording, loaded (a module may override it with another wording)."""
    from panen.engine.perils.adjuster import load_wording

    return load_wording(AUTP_WORDING_FILE)


@pytest.fixture(scope="module")
def raw_wording() -> dict:
    """The shipped AUTP wording as YAML data, to edit into variants."""
    import yaml

    return yaml.safe_load(AUTP_WORDING_FILE.read_text(encoding="utf-8"))
