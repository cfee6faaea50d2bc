"""deeprl: config-driven deep reinforcement learning experiments."""

__version__ = "0.1.0"
