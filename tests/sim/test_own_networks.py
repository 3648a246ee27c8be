"""A town can be the user's own network: a SUMO .net.xml(.gz) as it is, or an OpenStreetMap extract
converted with netconvert (sidewalks, crossings and signals guessed) and cached by its content.

`data/small_grid.osm` is written by hand (a 3 x 3 street grid, not real map data); nothing is downloaded.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from drivevlm.config import ConfigError, EnvConfig, build
from drivevlm.env import DriveEnv
from drivevlm.scripted_policy import RouteFollower
from drivevlm.sim.base import SimulatorError
from drivevlm.sim.sumo.backend import evaluation_routes
from drivevlm.sim.sumo.mapdata import load_town
from drivevlm.sim.sumo.towns import town_dir, town_network

OSM = Path(__file__).parent / "data" / "small_grid.osm"
ONE_STREET = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6">
  <node id="1" lat="48.1370" lon="11.5750" version="1"/>
  <node id="2" lat="48.1370" lon="11.5760" version="1"/>
  <way id="10" version="1"><nd ref="1"/><nd ref="2"/><tag k="highway" v="residential"/></way>
</osm>
"""
# Two streets of about 45 m meeting at a corner: no route reaches the 150 m a scenario needs.
CORNER = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6">
  <node id="1" lat="48.1370" lon="11.5750" version="1"/>
  <node id="2" lat="48.1370" lon="11.5756" version="1"/>
  <node id="3" lat="48.1374" lon="11.5756" version="1"/>
  <node id="4" lat="48.1366" lon="11.5756" version="1"/>
  <way id="10" version="1"><nd ref="1"/><nd ref="2"/><tag k="highway" v="residential"/></way>
  <way id="11" version="1"><nd ref="4"/><nd ref="2"/><nd ref="3"/><tag k="highway" v="residential"/></way>
</osm>
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("own-networks")


def _drive(town: str, cache: Path, scenario: str = "random", steps: int = 60) -> list[str]:
    """The scripted driver on the town's first evaluation route: it moves, on its route. Returns the kinds
    of the actors it saw."""
    # Empty roads: on single-lane streets background riders may start right in front of the ego.
    env = DriveEnv({"town": town, "scenario": scenario, "density": "empty", "cache_dir": str(cache)})
    try:
        obs, _ = env.reset(seed=0, options={"route_index": 0})
        driver, signals, top_speed, kinds = RouteFollower(seed=0), None, 0.0, set()
        for _ in range(steps):
            obs, _, terminated, truncated, info = env.step(driver.act(obs, signals))
            signals = info["signals"]
            top_speed = max(top_speed, signals.speed_kmh)
            kinds |= {actor.kind.value for actor in env.world_state.actors}
            assert not terminated and not truncated
        assert obs["bev"].any() and top_speed > 5.0
    finally:
        env.close()
    return sorted(kinds)


def test_an_openstreetmap_extract_becomes_a_town_cached_by_its_content(cache: Path, tmp_path: Path) -> None:
    net = town_network(str(OSM), cache)
    assert net.parent == town_dir(str(OSM), cache) and net.parent.name.startswith("osm-")
    assert town_network(str(OSM), cache) == net  # converted once
    town = load_town(str(OSM), cache)
    assert town.crossings and town.signals and town.sidewalk_edges
    # Every scripted scenario finds its ten evaluation routes on this small grid.
    for scenario in ("random", "pedestrian_crossing", "cyclist_merge", "car_following"):
        assert len(evaluation_routes(str(OSM), scenario, cache)) == 10
    edited = tmp_path / "edited.osm"
    edited.write_text(OSM.read_text().replace("East street 0", "High street"))
    assert town_dir(str(edited), cache) != net.parent
    assert "pedestrian" in _drive(str(OSM), cache, "pedestrian_crossing")


def test_a_sumo_network_file_plain_or_gzipped_is_used_as_it_is(cache: Path, tmp_path: Path) -> None:
    plain = tmp_path / "mine.net.xml"
    shutil.copy(town_network(str(OSM), cache), plain)
    packed = tmp_path / "mine.net.xml.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (plain, packed):
        assert town_network(str(path), cache) == path.resolve()
        _drive(str(path), cache)


def test_the_config_takes_a_network_path_and_names_what_it_accepts(tmp_path: Path) -> None:
    config = build(
        EnvConfig,
        {"town": str(OSM.relative_to(Path.cwd())) if OSM.is_relative_to(Path.cwd()) else str(OSM)},
        "env",
    )
    assert config.town == str(OSM.resolve())
    with pytest.raises(
        ConfigError,
        match=r"env.town: unknown value 'mars'; allowed: grid, highway, irregular, tee, or the path",
    ):
        build(EnvConfig, {"town": "mars"}, "env")
    with pytest.raises(ConfigError, match=r"env.town: no such network file '.*nowhere.osm'"):
        build(EnvConfig, {"town": str(tmp_path / "nowhere.osm")}, "env")
    with pytest.raises(ConfigError, match=r"env\.town: unknown value"):
        build(EnvConfig, {"simulator": "carla", "town": str(OSM)}, "env")


def test_a_network_too_small_or_without_roads_is_one_clear_error(cache: Path, tmp_path: Path) -> None:
    corner = tmp_path / "corner.osm"
    corner.write_text(CORNER)
    too_small = r"corner.osm: could not draw a route of at least 3 roads"
    with pytest.raises(SimulatorError, match=too_small):
        evaluation_routes(str(corner), "random", cache)
    env = DriveEnv({"town": str(corner), "cache_dir": str(cache)})
    with pytest.raises(SimulatorError, match=too_small):
        env.reset(seed=0)
    env.close()
    street = tmp_path / "one_street.osm"
    street.write_text(ONE_STREET)
    with pytest.raises(
        SimulatorError, match=r"one_street.osm: the network .* has no lane a car may drive on"
    ):
        load_town(str(street), cache)


def test_unseen_routes_of_an_own_town_are_its_evaluation_routes() -> None:
    from drivevlm.eval.suites import get_suite

    suite = get_suite("unseen_routes", episodes=10, training_town=str(OSM.resolve()))
    assert {episode.town for episode in suite.episodes} == {str(OSM.resolve())}
    assert sorted(episode.route_index for episode in suite.episodes) == list(range(10))


def test_a_driving_data_set_can_be_drawn_on_an_own_town(tmp_path: Path) -> None:
    from drivevlm.data.dataset import read_manifest
    from drivevlm.data.generate import generate_dataset

    generate_dataset(tmp_path / "data", 8, towns=[str(OSM)], scenarios=["pedestrian_crossing"], size=64)
    manifest = read_manifest(tmp_path / "data")
    assert manifest["frames"] >= 8
    with pytest.raises(ValueError, match=r"towns: unknown value 'mars'; allowed: .*OpenStreetMap"):
        generate_dataset(tmp_path / "other", 8, towns=["mars"])
