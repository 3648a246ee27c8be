"""Map conversion on a real carla.Map (loaded from OpenDRIVE; no server involved)."""

from __future__ import annotations

import carla
import numpy as np

from drivevlm.sim.carla.map import crosswalk_polygons, lane_graph, map_geometry, to_xy, to_yaw
from drivevlm.sim.world import LaneKind


def test_lanes_sidewalks_crossings_and_junctions(grid_map: carla.Map) -> None:
    geometry = map_geometry(grid_map)
    assert geometry.name == "carla:grid"
    assert len(geometry.lanes) >= 24
    assert all(lane.kind is LaneKind.DRIVING for lane in geometry.lanes)
    widths = np.array([lane.width for lane in geometry.lanes])
    assert np.all((widths > 2.5) & (widths < 5.0))
    xmin, ymin, xmax, ymax = geometry.bounds
    for lane in geometry.lanes:
        pts = lane.centerline
        assert pts.shape[1] == 2 and len(pts) >= 2
        assert np.all((pts[:, 0] >= xmin) & (pts[:, 0] <= xmax) & (pts[:, 1] >= ymin) & (pts[:, 1] <= ymax))
        steps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        assert steps.max() < 1.05
    # Two lanes each way: the right-most has index 0 and lies right of index 1 (in driving direction).
    roads: dict[str, dict[int, np.ndarray]] = {}
    for lane in geometry.lanes:
        roads.setdefault(lane.road_id, {})[lane.index] = lane.centerline
    right, left = roads[next(iter(roads))][0], roads[next(iter(roads))][1]
    heading = right[-1] - right[0]
    offset = left[len(left) // 2] - right[len(right) // 2]
    assert heading[0] * offset[1] - heading[1] * offset[0] > 0
    assert len(geometry.sidewalks) > 0 and all(1.0 <= s.width <= 4.0 for s in geometry.sidewalks)
    assert len(geometry.crossings) == len(crosswalk_polygons(grid_map)) > 0
    junction_ids = {seg.junction_id for seg in lane_graph(grid_map).segments.values() if seg.in_junction}
    assert len(geometry.junctions) == len(junction_ids) >= 9
    assert map_geometry(grid_map) is geometry


def test_coordinates_follow_our_frame(grid_map: carla.Map) -> None:
    """CARLA's y points south, ours north: the OpenDRIVE grid lies north-east of the origin, as in SUMO."""
    waypoints = grid_map.generate_waypoints(5.0)
    xy = np.array([to_xy(w.transform.location) for w in waypoints])
    assert xy.min() > -20.0 and xy.max() < 320.0
    waypoint = next(
        w for w in waypoints if not w.is_junction and w.next(2.0) and not w.next(2.0)[0].is_junction
    )
    x, y = to_xy(waypoint.transform.location)
    ahead = waypoint.next(2.0)[0]
    ax, ay = to_xy(ahead.transform.location)
    yaw = to_yaw(waypoint.transform.rotation)
    assert np.isclose(np.arctan2(ay - y, ax - x), yaw, atol=0.05)


def test_lane_graph_links_lanes_through_junctions(grid_map: carla.Map) -> None:
    graph = lane_graph(grid_map)
    inside = [s for s in graph.segments.values() if s.in_junction]
    outside = [s for s in graph.segments.values() if not s.in_junction]
    assert inside and outside
    for segment in outside:
        for key in segment.successors:
            nxt = graph.segments[key]
            assert np.linalg.norm(nxt.points[0] - segment.points[-1]) < 0.5
    # Two same-direction lanes per road: each has a neighbour to change into.
    assert sum(s.left is not None or s.right is not None for s in outside) == len(outside)


def test_shared_renderers_draw_the_converted_map(grid_map: carla.Map) -> None:
    """The policy sees the same semantics in both simulators: road under an ego placed on a CARLA lane."""
    from drivevlm.render.bev_masks import BevMaskRenderer
    from drivevlm.render.bev_rgb import BevRgbRenderer
    from drivevlm.sim.carla.route_planner import RoutePlanner, spawn_points
    from drivevlm.sim.world import EgoState, Pose, WorldState

    geometry = map_geometry(grid_map)
    start = spawn_points(grid_map)[0]
    route = RoutePlanner(grid_map).plan((start.x, start.y), (start.x + 200.0, start.y + 200.0))
    ego = EgoState(Pose(start.x, start.y, start.yaw), 0.0, 0.0, 0.0)
    state = WorldState(0.0, 0, ego, (), geometry, route)
    renderer = BevMaskRenderer(size=96, pixels_per_meter=3.0, history=0, ego_from_bottom=0.25)
    masks = renderer.render(state)
    road = masks[renderer.channels.index("road")]
    row, col = int(96 * 0.75), 48
    assert road[row, col] == 255
    assert 0.05 < (road > 0).mean() < 0.9
    assert masks[renderer.channels.index("lane_markings")].any()
    rgb = BevRgbRenderer().render(state)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 3
