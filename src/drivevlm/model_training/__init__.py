"""Training code for the small models this project ships (bundled under drivevlm/models/bundled/).

`drivevlm.model_training.evaluate` holds `train_models` / `evaluate_models` for the image-text model
and the detector; `train_tiny_vlm` trains the small VLM.
"""
