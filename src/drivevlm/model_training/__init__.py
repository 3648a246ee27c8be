"""Training code for the small models this project ships (bundled under drivevlm/models/bundled/).

`bundle.train_models` trains the image-text model and the detector, `evaluate.evaluate_models` measures
them on held-out data; `train_tiny_vlm` trains the small VLM.
"""
