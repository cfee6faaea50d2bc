import pytest
import torch

from deeprl.networks import NatureCNN


def test_shapes_and_layers():
    net = NatureCNN((4, 84, 84))
    assert net.out_dim == 512
    out = net(torch.zeros(3, 4, 84, 84, dtype=torch.uint8))
    assert out.shape == (3, 512) and out.dtype == torch.float32
    convs = [m for m in net.convs if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (32, (8, 8), (4, 4)), (64, (4, 4), (2, 2)), (64, (3, 3), (1, 1))]
    assert net.fc[0].in_features == 64 * 7 * 7


def test_uint8_input_is_scaled_to_unit_range():
    torch.manual_seed(0)
    net = NatureCNN((4, 84, 84))
    frames = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    torch.testing.assert_close(net(frames), net(frames.float() / 255.0))


def test_channels_last_gives_the_same_features():
    torch.manual_seed(0)
    a = NatureCNN((4, 84, 84))
    b = NatureCNN((4, 84, 84), channels_last=True)
    b.load_state_dict(a.state_dict())
    x = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    torch.testing.assert_close(a(x), b(x), rtol=1e-4, atol=1e-5)
    assert b.convs[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_flat_observations_are_refused_with_a_hint():
    with pytest.raises(ValueError, match="network=mlp"):
        NatureCNN((4,))


def test_auto_channels_last_runs_nhwc_on_the_cpu_with_the_same_features():
    torch.manual_seed(0)
    a = NatureCNN((4, 84, 84))
    b = NatureCNN((4, 84, 84), channels_last="auto")
    b.load_state_dict(a.state_dict())
    x = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    torch.testing.assert_close(a(x), b(x), rtol=1e-4, atol=1e-5)
    seen = []
    b.convs[0].register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    b(x)
    assert seen[0].is_contiguous(memory_format=torch.channels_last) and not seen[0].is_contiguous()


def test_bf16_autocast_converts_the_frames_straight_to_bf16():
    net = NatureCNN((4, 84, 84), channels_last=True)
    seen = []
    net.convs[0].register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    frames = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(frames)
    assert seen[0].dtype == torch.bfloat16
    torch.testing.assert_close(seen[0].float(), frames.float() / 255.0, rtol=1e-2, atol=1e-3)


def test_bad_channels_last_value_names_the_key():
    with pytest.raises(ValueError, match="network.channels_last"):
        NatureCNN((4, 84, 84), channels_last="yes")
