"""Where checkpoints written before the learners had a module each name their policy class."""

from drivevlm.train.sac import SharedEncoderSACPolicy

__all__ = ["SharedEncoderSACPolicy"]
