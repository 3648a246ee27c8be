"""drivevlm: driving policies from RL with vision-language models as reward teachers (DriveVLM-RL)."""

import gymnasium as _gym

__version__ = "0.1.0"

# Registered on `import drivevlm`, as gymnasium packages do; the env module loads only on gym.make().
ENV_ID = "drivevlm/Town-v0"
if ENV_ID not in _gym.registry:
    _gym.register(id=ENV_ID, entry_point="drivevlm.env:DriveEnv")
