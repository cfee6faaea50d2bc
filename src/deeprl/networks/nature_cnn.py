import torch
from torch import nn


class NatureCNN(nn.Module):
    """The DQN torso (Mnih et al. 2015): three convolutions and a 512-unit layer, ReLU after each.

    Input: frame stacks (C, H, W), uint8 in [0, 255] (scaled by 1/255 here, so the replay buffer and
    the env keep the 4x smaller uint8) or floats already in [0, 1]. `out_dim` features.
    `channels_last` (true, false or auto = true on the CPU) runs the convolutions in NHWC memory
    format, which oneDNN and often cuDNN prefer; the result is the same either way.
    """

    def __init__(self, obs_shape, hidden_size: int = 512, channels_last: bool | str = False):
        super().__init__()
        if len(obs_shape) != 3:
            raise ValueError(f"network: NatureCNN needs (channels, height, width) observations, got shape "
                             f"{tuple(obs_shape)}; use network=mlp for flat observations")
        if channels_last not in (True, False, "auto"):
            raise ValueError(f"network.channels_last: must be true, false or auto, got {channels_last!r}")
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
        if channels_last is True:
            self.convs.to(memory_format=torch.channels_last)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        # deeprl.build turns `auto` into true/false for the run's device; a network built
        # elsewhere decides per call (NHWC input alone makes the convolutions run NHWC).
        channels_last = obs.device.type == "cpu" if self.channels_last == "auto" else self.channels_last
        if channels_last:
            # Reorder while the pixels are 1-byte uint8, as a plain contiguous NHWC copy (measured
            # 2x faster than .contiguous(memory_format=channels_last)); the permuted view back to
            # NCHW has channels_last strides, and the conversions below keep them.
            obs = obs.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
        # Convert straight to the dtype the convolutions run in (bf16 under autocast), so the batch
        # is converted once rather than to fp32 and again by autocast.
        device = obs.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32
        x = obs.to(dtype)
        if obs.dtype == torch.uint8:
            x = x.mul_(1.0 / 255.0)
        return self.fc(self.convs(x))
