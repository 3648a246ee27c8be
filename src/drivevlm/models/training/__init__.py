"""Training and held-out evaluation of the bundled models (the aligned image-text model and the detector)."""

from drivevlm.models.training.evaluate import evaluate_models, train_models

__all__ = ["evaluate_models", "train_models"]
