"""Real `carla.Map` objects without a CARLA server: our SUMO towns exported to OpenDRIVE.

Every test here is marked `carla` and skipped when the CARLA client is not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

carla = pytest.importorskip("carla")

pytestmark = pytest.mark.carla


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.carla)


@pytest.fixture(scope="session")
def grid_xodr(tmp_path_factory: pytest.TempPathFactory) -> str:
    from drivevlm.sim.sumo.towns import export_opendrive

    folder = tmp_path_factory.mktemp("carla-grid")
    path = export_opendrive("grid", folder / "grid.xodr", cache_dir=folder)
    return path.read_text()


@pytest.fixture(scope="session")
def grid_map(grid_xodr: str) -> carla.Map:
    """The SUMO grid town as a CARLA map (loaded offline from its OpenDRIVE text)."""
    return carla.Map("grid", grid_xodr)
