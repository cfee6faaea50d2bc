"""Torsos (observation -> features) and heads (features -> outputs)."""

from deeprl.networks.heads import DuelingHead, QHead
from deeprl.networks.minatar_cnn import MinAtarCNN
from deeprl.networks.mlp import MLP
from deeprl.networks.nature_cnn import NatureCNN

__all__ = ["MLP", "MinAtarCNN", "NatureCNN", "QHead", "DuelingHead"]
