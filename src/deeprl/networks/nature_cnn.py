import torch
from torch import nn


class NatureCNN(nn.Module):
    """The DQN torso (Mnih et al. 2015): three convolutions and a 512-unit layer, ReLU after each.

    Input: frame stacks (C, H, W), uint8 in [0, 255] (scaled by 1/255 here, so the replay buffer and
    the env keep the 4x smaller uint8) or floats already in [0, 1]. `out_dim` features.
    `channels_last` runs the convolutions in NHWC memory format, which cuDNN and oneDNN often prefer;
    the result is the same either way.
    """

    def __init__(self, obs_shape, hidden_size: int = 512, channels_last: bool = False):
        super().__init__()
        if len(obs_shape) != 3:
            raise ValueError(f"network: NatureCNN needs (channels, height, width) observations, got shape "
                             f"{tuple(obs_shape)}; use network=mlp for flat observations")
        self.channels_last = channels_last
        self.convs = nn.Sequential(
            nn.Conv2d(obs_shape[0], 32, kernel_size=8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = self.convs(torch.zeros(1, *obs_shape)).shape[1]
        self.fc = nn.Sequential(nn.Linear(n_flat, hidden_size), nn.ReLU())
        self.out_dim = hidden_size
        if channels_last:
            self.convs.to(memory_format=torch.channels_last)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255.0 if obs.dtype == torch.uint8 else obs.float()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.fc(self.convs(x))
