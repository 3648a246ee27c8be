"""Renderers shared by every simulator backend: pure functions of a `WorldState`.

- `BevMaskRenderer`: the policy's bird's-eye semantic masks (uint8, C x H x W, with history).
- `BevRgbRenderer`: the bird's-eye RGB picture for the static CLIP pathway.
- `FrontCameraRenderer`: the pinhole front camera for the detector gate and the LVLM.

Static map layers are rasterised once per map name into a `StaticLayerCache` (shared by default).
"""

from drivevlm.render import palette
from drivevlm.render.bev_masks import ACTOR_GROUPS, STATIC_CHANNELS, BevMaskRenderer
from drivevlm.render.bev_rgb import BevRgbRenderer
from drivevlm.render.front_camera import FrontCameraRenderer
from drivevlm.render.static import DEFAULT_CACHE, StaticLayer, StaticLayerCache

__all__ = [
    "ACTOR_GROUPS",
    "DEFAULT_CACHE",
    "STATIC_CHANNELS",
    "BevMaskRenderer",
    "BevRgbRenderer",
    "FrontCameraRenderer",
    "StaticLayer",
    "StaticLayerCache",
    "palette",
]
