"""Image-text (CLIP-like) encoders: transformers (default install) and open_clip (`vision` extra).

Backends are imported lazily by drivevlm.models.registry so that optional dependencies stay optional.
"""
