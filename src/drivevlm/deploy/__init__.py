"""VLM-free deployment: `export` writes policies (needs torch, SB3); `runtime` runs them (numpy, onnxruntime).

Nothing is imported here, so `drivevlm.deploy.runtime` stays loadable without torch.
"""
