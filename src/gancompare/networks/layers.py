"""The layers the paper architectures are built from, apart from them: normalisation (batch,
layer, spectral), initialisation, TensorFlow's "same" padding, D's packing wrapper, Maxout, and
the CPU kernels written for speed (a Dropout drawn as `rand >= p`, an image head conv)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gancompare.errors import ConfigError

# The values of model.d_norm / model.g_norm: (channels, conv) -> the layer after a conv or linear
# layer. `layer` normalises each sample on its own (GroupNorm with one group is layer norm over
# C×H×W), which keeps a gradient penalty's per-sample gradients meaningful. `spectral` is no
# layer: it reparametrises the weights (`spectral_norm` below). A new norm is one entry here.
NORMS: dict[str, Callable[[int, bool], nn.Module]] = {
    "none": lambda channels, conv: nn.Identity(),
    "batch": lambda channels, conv: nn.BatchNorm2d(channels) if conv else nn.BatchNorm1d(channels),
    "layer": lambda channels, conv: nn.GroupNorm(1, channels) if conv else nn.LayerNorm(channels),
    "spectral": lambda channels, conv: nn.Identity(),
}


def norm_layer(kind: str, channels: int, conv: bool) -> nn.Module:
    """The norm layer `kind` of NORMS for `channels` features."""
    if kind in NORMS:
        return NORMS[kind](channels, conv)
    raise ConfigError("model.d_norm / model.g_norm", f"unknown norm '{kind}'",
                      f"choose one of {', '.join(NORMS)}")


def init_weights(module: nn.Module, std: float, norm_std: float | None = None) -> None:
    """DCGAN initialisation: every weight N(0, std), norm scales N(1, norm_std) (default std;
    0 gives Blocks' and PyTorch's constant 1), biases 0."""
    norm_std = std if norm_std is None else norm_std
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d | nn.GroupNorm | nn.LayerNorm) \
                and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, norm_std)
            nn.init.zeros_(m.bias)


class ImageHeadConv2d(nn.Conv2d):
    """A stride-1 Conv2d to a few output channels (G's last layer, 128 → C), computed as one
    channels-last matmul to the K×K taps, then `fold` (col2im) summing the taps into place.

    oneDNN runs a 128 → 1, 7×7 conv at about 16 GFLOP/s on this CPU, a third of the baseline
    step; the matmul and fold take its forward and backward 3× faster. Same parameters, state
    dict and initialisation as nn.Conv2d, same numbers up to float summation order.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = self.padding if isinstance(self.padding, tuple) else (0, 0)
        kh, kw = self.kernel_size
        if (self.stride, self.dilation, self.groups) != ((1, 1), (1, 1), 1) \
                or isinstance(self.padding, str) or ph >= kh or pw >= kw:
            return super().forward(x)
        n, c, h, w = x.shape
        # taps[n, position, out·K·K]: every input pixel times every (flipped) kernel tap
        taps = x.permute(0, 2, 3, 1).reshape(n, h * w, c) @ \
            self.weight.flip(-1, -2).permute(1, 0, 2, 3).reshape(c, -1)
        # fold adds tap (i, j) of input pixel q into output pixel q - (i, j) + padding
        y = F.fold(taps.transpose(1, 2), (h + 2 * ph - kh + 1, w + 2 * pw - kw + 1),
                   (kh, kw), padding=(kh - 1 - ph, kw - 1 - pw))
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


class Dropout(nn.Dropout):
    """nn.Dropout drawn as `rand >= p`: aten's bernoulli_ takes 1.5 ms per 128×1024 on this
    CPU, three times a uniform draw, and it was a fifth of the mlp step. Same distribution.

    `noise`, when set, replaces the draw: several seeds trained as one batched computation
    (`seeds.py`) draw each run's uniforms from that run's own generator and hand them in."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p)
        self.noise: torch.Tensor | None = None

    @property
    def draws(self) -> bool:
        """Whether a forward pass draws random numbers (in training, 0 < p < 1)."""
        return self.training and 0 < self.p < 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.p == 1:  # nn.Dropout's p = 1: all dropped (1 / (1 - p) would make 0 · inf)
            return torch.zeros_like(x)
        noise = torch.rand(x.shape, device=x.device) if self.noise is None else self.noise
        return x * (noise >= self.p).to(x.dtype).mul_(1 / (1 - self.p))


class Discriminator(nn.Module):
    """Wraps a body that ends in one unit, so every D returns a flat [N] vector of logits.

    With packing (PacGAN, `model.pack=m`) D judges m samples at once: rows m·i … m·i+m−1 of its
    input are concatenated along the first feature axis (the coordinates of 2-D points, the
    channels of images), so [N·m, C, …] gives N logits.
    """

    def __init__(self, body: nn.Module, pack: int = 1) -> None:
        super().__init__()
        self.body = body
        self.pack = pack

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pack > 1:
            x = x.unflatten(0, (-1, self.pack)).flatten(1, 2)
        return self.body(x).flatten()


class Maxout(nn.Module):
    """Maxout layer (Goodfellow et al. 2013): a linear map to width × pieces, then the max over
    each unit's pieces."""

    def __init__(self, width_in: int, width: int, pieces: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width_in, width * pieces)
        self.width, self.pieces = width, pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).unflatten(-1, (self.width, self.pieces)).amax(-1)


def same_padding(size_in: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'SAME' padding (before, after) of a strided conv: out = ceil(in / stride),
    the odd pixel padded after."""
    size_out = -(-size_in // stride)
    total = max((size_out - 1) * stride + kernel - size_in, 0)
    return total // 2, total - total // 2


def conv_same(c_in: int, c_out: int, size_in: int, kernel: int = 5,
              stride: int = 2) -> list[nn.Module]:
    before, after = same_padding(size_in, kernel, stride)
    return [nn.ZeroPad2d((before, after, before, after)), nn.Conv2d(c_in, c_out, kernel, stride)]


def deconv_same(c_in: int, c_out: int, size_in: int, size_out: int, kernel: int = 5,
                stride: int = 2) -> list[nn.Module]:
    """TensorFlow's conv2d_transpose with 'SAME' padding to size_out: the full transposed conv,
    then the forward conv's padding cropped away (a negative ZeroPad2d crops)."""
    before, _ = same_padding(size_out, kernel, stride)
    after = (size_in - 1) * stride + kernel - size_out - before
    return [nn.ConvTranspose2d(c_in, c_out, kernel, stride),
            nn.ZeroPad2d((-before, -after, -before, -after))]


def spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018): every conv and linear weight divided by its
    largest singular value, estimated by one power iteration per training forward pass
    (`torch.nn.utils.parametrizations.spectral_norm`; a transposed conv's along dim 1). Applied
    after initialisation, so the N(0, std) weights are what gets normalised."""
    from torch.nn.utils.parametrizations import spectral_norm as parametrize

    for m in list(module.modules()):
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            parametrize(m)
    return module
