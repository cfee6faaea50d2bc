import torch
from torch import nn


class MinAtarCNN(nn.Module):
    """The MinAtar DQN torso (Young & Tian 2019): one 3x3 convolution with 16 channels (stride 1, no
    padding) and a 128-unit layer, ReLU after each; on 10x10 maps that is 16 x 8 x 8 = 1024 features
    into the hidden layer. The algorithm adds its head.

    Input: (C, H, W) binary maps, uint8 or float, used as they are: MinAtar's channels are already
    0/1, so unlike NatureCNN nothing is divided by 255. `out_dim` features.
    """

    def __init__(self, obs_shape, channels: int = 16, hidden_size: int = 128, kernel_size: int = 3):
        super().__init__()
        if len(obs_shape) != 3 or min(obs_shape[1:]) < kernel_size:
            raise ValueError(f"network: MinAtarCNN needs (channels, height, width) observations of at least "
                             f"{kernel_size}x{kernel_size}, got shape {tuple(obs_shape)}")
        self.conv = nn.Conv2d(obs_shape[0], channels, kernel_size=kernel_size, stride=1)
        n_flat = channels * (obs_shape[1] - kernel_size + 1) * (obs_shape[2] - kernel_size + 1)
        self.fc = nn.Linear(n_flat, hidden_size)
        self.out_dim = hidden_size

    @staticmethod
    def multiply_adds(obs_shape, channels: int = 16, hidden_size: int = 128, kernel_size: int = 3) -> int:
        """Multiply-adds of one forward pass for one observation (for `device: auto`)."""
        c, h, w = obs_shape
        positions = (h - kernel_size + 1) * (w - kernel_size + 1)
        return positions * channels * c * kernel_size**2 + positions * channels * hidden_size

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        # Straight to the dtype the layers run in (bf16 under autocast): one conversion of the batch.
        device = obs.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32
        x = torch.relu(self.conv(obs.to(dtype)))
        return torch.relu(self.fc(x.flatten(1)))
