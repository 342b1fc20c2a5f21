"""The registry on the session's embedded PostgreSQL (``registry_db``, tests/conftest.py):
a fresh database per test, so tests never see each other's chains or alerts."""

from __future__ import annotations

from pathlib import Path

import pytest

from chainmap_otel.registry import ChainRegistry
from chainmap_otel.registry.postgres import RegistryDatabase


@pytest.fixture
def registry(registry_db: RegistryDatabase) -> ChainRegistry:
    return ChainRegistry(registry_db)


@pytest.fixture
def chains_dir(tmp_path: Path) -> Path:
    return tmp_path
