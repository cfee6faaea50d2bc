"""Torsos (observation -> features) and heads (features -> outputs)."""

from deeprl.networks.heads import DuelingHead, QHead
from deeprl.networks.mlp import MLP

__all__ = ["MLP", "QHead", "DuelingHead"]
