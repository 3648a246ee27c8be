"""Evaluation: episode logs (`episode_log`), the paper's metrics (`metrics`), tables, reports (`report`)."""
