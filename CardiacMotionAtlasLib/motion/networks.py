"""Building blocks of CardioMorphNet: 3D convolutions that downsample in-plane only (the SAX stack is
thin in z), a 3D U-Net, FeatNet and a convolutional LSTM cell. Tensors are ``(N, C, z, y, x)``."""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

IN_PLANE = (1, 2, 2)  # pooling / stride: keep z, halve y and x


def conv_block(c_in: int, c_out: int, stride: Tuple[int, int, int] = (1, 1, 1)) -> nn.Sequential:
    """3x3x3 convolution (stride in-plane only) + instance normalisation + LeakyReLU."""
    return nn.Sequential(nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1),
                         nn.InstanceNorm3d(c_out, affine=True), nn.LeakyReLU(0.2, inplace=True))


class UNet3D(nn.Module):
    """A 3D U-Net whose levels halve y and x only: ``channels[i]`` features at level i (in-plane size /
    2^i), skip connections by concatenation, a 1x1x1 head of ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, channels: Sequence[int]) -> None:
        super().__init__()
        channels = list(channels)
        self.enc = nn.ModuleList()
        previous = in_channels
        for level, width in enumerate(channels):
            stride = (1, 1, 1) if level == 0 else IN_PLANE
            self.enc.append(nn.Sequential(conv_block(previous, width, stride), conv_block(width, width)))
            previous = width
        self.dec = nn.ModuleList()
        for level in range(len(channels) - 2, -1, -1):
            self.dec.append(conv_block(previous + channels[level], channels[level]))
            previous = channels[level]
        self.head = nn.Conv3d(previous, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.dec, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[2:], mode="trilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        return self.head(x)


class FeatNet(nn.Module):
    """Encodes each SAX volume ``I_t`` ``(N, 1, z, y, x)`` into features at in-plane resolution / 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(conv_block(1, channels // 2 or 1), conv_block(channels // 2 or 1, channels, IN_PLANE),
                                 conv_block(channels, channels))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class ConvLSTMCell(nn.Module):
    """RecNet: a convolutional LSTM cell; ``forward(x, (h, c)) -> (h, c)`` on ``(N, C, z, y, x)``."""

    def __init__(self, in_channels: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv3d(in_channels + hidden, 4 * hidden, 3, padding=1)

    def initial_state(self, like: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        shape = (like.shape[0], self.hidden, *like.shape[2:])
        zeros = like.new_zeros(shape)
        return zeros, zeros.clone()

    def forward(self, x: torch.Tensor, state: Tuple[torch.Tensor, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], 1)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class GaussianHead(nn.Module):
    """1x1x1 convolution giving a diagonal Gaussian ``(mean, log_variance)`` of ``channels`` maps."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, 2 * channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.conv(x).chunk(2, 1)
        return mean, log_var.clamp(-10.0, 6.0)


class ImageDecoder(nn.Module):
    """Decodes ``I_t`` ``(N, 1, z, y, x)`` from the latent and hidden state at in-plane resolution / 2."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.body = conv_block(in_channels, width)
        self.out = nn.Conv3d(width, 1, 3, padding=1)

    def forward(self, x: torch.Tensor, shape_zyx) -> torch.Tensor:
        x = F.interpolate(self.body(x), size=tuple(shape_zyx), mode="trilinear", align_corners=False)
        return self.out(x)


__all__ = ["ConvLSTMCell", "FeatNet", "GaussianHead", "ImageDecoder", "UNet3D", "conv_block"]
