"""Policy features: a CNN over the BEV masks and an MLP over the state vector, concatenated.

The CNN follows VLM-RL's layer plan (channels 8/16/32/64/128/256, kernels 5,5,5,3,3,3, strides 2,2,2,2,2,1).
VLM-RL fed 192 px masks without padding; our 96 px masks would shrink below the last kernel, so every
convolution pads by kernel // 2 (96 -> 48 -> 24 -> 12 -> 6 -> 3 -> 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class BevStateExtractor(BaseFeaturesExtractor):
    def __init__(
        self,
        observation_space: spaces.Dict,
        cnn_channels: Sequence[int] = (8, 16, 32, 64, 128, 256),
        cnn_kernels: Sequence[int] = (5, 5, 5, 3, 3, 3),
        cnn_strides: Sequence[int] = (2, 2, 2, 2, 2, 1),
        bev_features: int = 256,
        state_hidden: Sequence[int] = (64,),
        bev_key: str = "bev",
        state_key: str = "state",
        channels_last: bool = True,
    ) -> None:
        for key in (bev_key, state_key):
            if key not in observation_space.spaces:
                raise KeyError(f"observation space: missing {key!r} (has {sorted(observation_space.spaces)})")
        bev_shape = observation_space[bev_key].shape
        state_dim = int(observation_space[state_key].shape[0])
        width = bev_features + (state_hidden[-1] if state_hidden else state_dim)
        super().__init__(observation_space, features_dim=width)
        self.bev_key, self.state_key = bev_key, state_key
        layers: list[nn.Module] = []
        channels_in = bev_shape[0]
        for channels, kernel, stride in zip(cnn_channels, cnn_kernels, cnn_strides, strict=True):
            conv = nn.Conv2d(channels_in, channels, kernel, stride, padding=kernel // 2)
            layers += [conv, nn.ReLU(inplace=True)]
            channels_in = channels
        layers.append(nn.Flatten())
        # Channels-last input: oneDNN runs these small-channel convolutions 2-3x faster on a CPU than NCHW.
        self.memory_format = th.channels_last if channels_last else th.contiguous_format
        self.cnn = nn.Sequential(*layers)
        with th.no_grad():
            flat = self.cnn(th.zeros((1, *bev_shape))).shape[1]
        self.bev_head = nn.Sequential(nn.Linear(flat, bev_features), nn.ReLU())
        mlp: list[nn.Module] = []
        size = state_dim
        for hidden in state_hidden:
            mlp += [nn.Linear(size, hidden), nn.ReLU(inplace=True)]
            size = hidden
        self.state_mlp = nn.Sequential(*mlp) if mlp else nn.Identity()

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        # SB3 has already scaled the uint8 masks to [0, 1] (the BEV space is an image space). Under autocast
        # a bfloat16 batch (the learner's, `sample_for_learner`) goes in as it is.
        masks = observations[self.bev_key]
        if not th.is_autocast_enabled(masks.device.type):
            masks = masks.float()
        masks = masks.contiguous(memory_format=self.memory_format)
        bev = self.bev_head(self.cnn(masks))
        return th.cat([bev, self.state_mlp(observations[self.state_key].float())], dim=1)
