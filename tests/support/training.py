"""Training settings small enough for a test: a few hundred steps of SAC on the real env in seconds."""

SMALL_TRAINING = (
    "env.density=empty",
    "train.seed=5",
    "train.log_interval=32",
    "train.sac.learning_starts=64",
    "train.sac.batch_size=16",
    "train.sac.train_freq=32",
    "train.sac.gradient_steps=2",
    "train.sac.buffer_size=2000",
    "train.sac.net_arch=[32,32]",
    "train.policy.cnn_channels=[8,16]",
    "train.policy.cnn_kernels=[5,3]",
    "train.policy.cnn_strides=[4,2]",
    "train.policy.bev_features=32",
)
