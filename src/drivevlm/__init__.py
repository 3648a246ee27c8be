"""drivevlm: driving policies from RL with vision-language models as reward teachers (DriveVLM-RL)."""

__version__ = "0.1.0"
