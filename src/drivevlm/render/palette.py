"""The fixed colour legend of the RGB renderers (RGB order, uint8).

Every simulator backend draws with these colours so that the CLIP pathway and the detector see the same
semantics whichever simulator produced the frame. docs/rendering.md documents the same table.
"""

from __future__ import annotations

from drivevlm.sim.world import ActorKind

RGB = tuple[int, int, int]

# Static map layers (BEV RGB and the ground of the front camera).
TERRAIN: RGB = (96, 118, 78)
ROAD: RGB = (84, 84, 88)
JUNCTION: RGB = (84, 84, 88)
BIKE_LANE: RGB = (128, 72, 66)
SIDEWALK: RGB = (176, 172, 164)
KERB: RGB = (140, 136, 130)
LANE_MARKING: RGB = (236, 236, 236)
CENTRE_LINE: RGB = (238, 196, 40)
CROSSING_STRIPE: RGB = (236, 236, 236)
STOP_LINE: RGB = (236, 236, 236)

# Annotations (BEV RGB only, off by default).
ROUTE: RGB = (60, 140, 255)

# Actors (BEV RGB fills; the front camera uses them as body colours).
EGO: RGB = (0, 200, 220)
CAR: RGB = (40, 90, 210)
BICYCLE: RGB = (250, 150, 20)
MOTORCYCLE: RGB = (200, 40, 200)
PEDESTRIAN: RGB = (230, 30, 40)
# Motorway hazards: a crate of lost cargo (a teal no other class or surface has), a warning triangle.
OBSTACLE: RGB = (0, 150, 110)
WARNING_TRIANGLE: RGB = (255, 80, 0)

ACTOR_COLOURS: dict[ActorKind, RGB] = {
    ActorKind.CAR: CAR,
    ActorKind.BICYCLE: BICYCLE,
    ActorKind.MOTORCYCLE: MOTORCYCLE,
    ActorKind.PEDESTRIAN: PEDESTRIAN,
    ActorKind.OBSTACLE: OBSTACLE,
    ActorKind.WARNING_TRIANGLE: WARNING_TRIANGLE,
}

# BEV RGB only: pedestrians in the camera's shirt colour would match the red signal dots, which are as
# large; in the bird's-eye legend they are near-black, a colour nothing else there has.
BEV_PEDESTRIAN: RGB = (16, 16, 20)
BEV_ACTOR_COLOURS: dict[ActorKind, RGB] = ACTOR_COLOURS | {ActorKind.PEDESTRIAN: BEV_PEDESTRIAN}

# Traffic light states ('r', 'y', 'g') as dots at the stop lines.
LIGHT_RED: RGB = (255, 20, 20)
LIGHT_YELLOW: RGB = (255, 220, 0)
LIGHT_GREEN: RGB = (20, 230, 60)
LIGHT_COLOURS: dict[str, RGB] = {"r": LIGHT_RED, "y": LIGHT_YELLOW, "g": LIGHT_GREEN}

# Front camera only.
SKY_TOP: RGB = (92, 146, 214)
SKY_HORIZON: RGB = (188, 212, 234)
HAZE: RGB = (170, 184, 190)
WINDOW: RGB = (38, 48, 60)
TYRE: RGB = (24, 24, 26)
SKIN: RGB = (224, 172, 130)
RIDER: RGB = (52, 52, 64)
LIGHT_HOUSING: RGB = (30, 30, 30)


def darker(colour: RGB, factor: float) -> RGB:
    """The same hue scaled towards black: shading of box faces and outlines."""
    return (int(colour[0] * factor), int(colour[1] * factor), int(colour[2] * factor))
