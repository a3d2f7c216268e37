"""The shared segmentation network: DeepLabV3+ on a MobileNetV2 backbone.

The backbone copies torchvision's MobileNetV2 module tree exactly, so an
ImageNet state dict from torchvision loads key for key (``features.*``);
torchvision itself is not needed. Dilation replaces stride once the output
stride is reached, as in the DeepLab reference code.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rtrbench.errors import ConfigError

# t (expansion), c (channels), n (repeats), s (stride of the first repeat) - torchvision / the paper.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding (keeps channel counts identical to its checkpoints)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # never round down by more than 10%
        new_v += divisor
    return new_v


class ConvBNReLU6(nn.Sequential):
    """torchvision's Conv2dNormActivation: children 0 = conv, 1 = BN, 2 = ReLU6."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1, dilation: int = 1):
        padding = (kernel - 1) // 2 * dilation  # keeps "same" size for dilated 3x3
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, padding, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int, dilation: int = 1):
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(cin, hidden, kernel=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden, dilation=dilation),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2Backbone(nn.Module):
    """``features`` of torchvision's MobileNetV2, dilated to ``output_stride``.

    ``forward`` returns (low-level features at stride 4 = output of features[3],
    high-level features at ``output_stride`` = output of the whole ``features``).
    """

    def __init__(self, width_mult: float = 1.0, output_stride: int = 16):
        super().__init__()
        if output_stride not in (8, 16):
            raise ConfigError(f"network: output_stride must be 8 or 16, got {output_stride}")
        cin = _make_divisible(32 * width_mult)
        layers: list[nn.Module] = [ConvBNReLU6(3, cin, stride=2)]
        current_stride, dilation = 2, 1
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            cout = _make_divisible(c * width_mult)
            previous_dilation = dilation
            if current_stride * s > output_stride:
                # Past the output stride: keep resolution and dilate instead. The first
                # block of the stage still uses the previous dilation (DeepLab / ResNet
                # replace_stride_with_dilation convention), the rest the new one.
                stride, dilation = 1, dilation * s
            else:
                stride, current_stride = s, current_stride * s
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, t,
                                               previous_dilation if i == 0 else dilation))
                cin = cout
        self.features = nn.Sequential(*layers)
        self.low_level_channels = _make_divisible(24 * width_mult)
        self.high_level_channels = cin
        for m in self.modules():  # torchvision's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        low = self.features[:4](x)
        return low, self.features[4:](low)


def _conv_bn_relu(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    padding = (kernel - 1) // 2 * dilation
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ASPP(nn.Module):
    def __init__(self, cin: int, channels: int, rates: tuple[int, int, int]):
        super().__init__()
        self.branches = nn.ModuleList(
            [_conv_bn_relu(cin, channels, 1)] + [_conv_bn_relu(cin, channels, 3, r) for r in rates]
        )
        # Image pooling has one value per channel per image, so BatchNorm would fail
        # in train mode at batch size 1 and be noisy at small batches: no norm here,
        # the conv gets a bias instead.
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, channels, 1), nn.ReLU(inplace=True))
        self.project = nn.Sequential(_conv_bn_relu(5 * channels, channels, 1), nn.Dropout(0.1))

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.pool(x).expand(-1, -1, x.shape[2], x.shape[3])  # upsampling a 1x1 map = broadcast
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ (Chen et al. 2018) on MobileNetV2.

    Input: B x 3 x H x W float RGB in 0..255 (normalised inside with ImageNet mean/std).
    Output: B x num_classes x H x W logits.

    The backbone ends before torchvision's final 1x1 conv (features.18), so the ASPP sees the
    320-channel output, as in the paper's reference code (pytorch-deeplab-xception); the
    paper's numbers come from it. Loading torchvision weights ignores features.18.
    """

    def __init__(self, num_classes: int, width_mult: float = 1.0, decoder_channels: int = 256,
                 output_stride: int = 16):
        super().__init__()
        self.backbone = MobileNetV2Backbone(width_mult, output_stride)
        rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
        self.aspp = ASPP(self.backbone.high_level_channels, decoder_channels, rates)
        low_channels = max(8, decoder_channels * 48 // 256)  # 48 at the standard width 256
        self.reduce = _conv_bn_relu(self.backbone.low_level_channels, low_channels, 1)
        self.decoder = nn.Sequential(
            _conv_bn_relu(decoder_channels + low_channels, decoder_channels, 3),
            _conv_bn_relu(decoder_channels, decoder_channels, 3),
        )
        self.classifier = nn.Conv2d(decoder_channels, num_classes, 1)
        for m in [self.aspp, self.reduce, self.decoder, self.classifier]:
            for mod in m.modules():
                if isinstance(mod, nn.Conv2d):
                    nn.init.kaiming_normal_(mod.weight)
                    if mod.bias is not None:
                        nn.init.zeros_(mod.bias)
        # Not persistent: constants, so they stay out of checkpoints.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        x = (images - self.mean) / self.std
        low, high = self.backbone(x)
        low = self.reduce(low)
        y = F.interpolate(self.aspp(high), size=low.shape[2:], mode="bilinear", align_corners=False)
        y = self.classifier(self.decoder(torch.cat([y, low], dim=1)))
        return F.interpolate(y, size=images.shape[2:], mode="bilinear", align_corners=False)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        """ASPP + decoder + classifier: trained at 10x the backbone's learning rate."""
        return [p for m in (self.aspp, self.reduce, self.decoder, self.classifier) for p in m.parameters()]


def _shape(t: Tensor) -> str:
    return "(" + ",".join(map(str, t.shape)) + ")"


def load_backbone_weights(model: DeepLabV3Plus, path: Path) -> None:
    """Load a torchvision ImageNet MobileNetV2 state dict into ``model.backbone``.

    Accepts a plain state dict or a checkpoint dict holding one under
    "state_dict" / "model"; a "module." prefix (DataParallel) is stripped and
    ``classifier.*`` ignored. Any mismatch raises ConfigError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: backbone weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch errors all mean "not a readable state dict"
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if msg.startswith("Weights only load failed"):  # torch's multi-paragraph safety message
            msg = "not a PyTorch file of plain tensors (torch.load with weights_only=True refused it)"
        raise ConfigError(f"{path}: cannot read backbone weights: {msg}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{path}: not a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.backbone.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")
             and (k in own or not k.startswith("features.18."))}  # torchvision's last conv, not in the model
    for key, tensor in own.items():
        if key not in state:
            if key.endswith("num_batches_tracked"):  # old checkpoints lack it; BN counts from 0
                continue
            raise ConfigError(f"{path}: missing backbone key {key}")
        if state[key].shape != tensor.shape:
            raise ConfigError(f"{path}: {key}: shape {_shape(state[key])} in file, "
                              f"{_shape(tensor)} in model")
    unexpected = [k for k in state if k not in own]
    if unexpected:
        raise ConfigError(f"{path}: unexpected key {unexpected[0]} (not a MobileNetV2 backbone?)")
    model.backbone.load_state_dict(state, strict=False)
