"""Reward annotation, between collection and learning: the pending-reward backlog (`queue`), the
reward-request windows of front frames (`windows`), and the annotator that scores batches on its own
thread (`annotator`).

It knows rewards only as a `RewardFunction` and learners not at all; `train/` and `distributed/` both
build on it.
"""
