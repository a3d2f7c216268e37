"""DeepLabV3+ / MobileNetV2: shapes, strides, gradients, and torchvision key compatibility."""

import math

import pytest
import torch

from rtrbench.errors import ConfigError
from rtrbench.network import DeepLabV3Plus, load_backbone_weights

torch.manual_seed(0)

# Written here independently of bench/network.py: torchvision's MobileNetV2 key names and shapes.
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _divisible(v, d=8):
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def torchvision_state_dict(width=1.0):
    shapes = {}

    def conv_bn(prefix, cin, cout, k, groups=1):
        shapes[f"{prefix}.0.weight"] = (cout, cin // groups, k, k)
        bn(f"{prefix}.1", cout)

    def bn(prefix, c):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    cin = _divisible(32 * width)
    conv_bn("features.0", 3, cin, 3)
    idx = 1
    for t, c, n, _ in SETTINGS:
        cout = _divisible(c * width)
        for _ in range(n):
            hidden = round(cin * t)
            p = f"features.{idx}.conv"
            if t == 1:
                conv_bn(f"{p}.0", hidden, hidden, 3, groups=hidden)
                shapes[f"{p}.1.weight"] = (cout, hidden, 1, 1)
                bn(f"{p}.2", cout)
            else:
                conv_bn(f"{p}.0", cin, hidden, 1)
                conv_bn(f"{p}.1", hidden, hidden, 3, groups=hidden)
                shapes[f"{p}.2.weight"] = (cout, hidden, 1, 1)
                bn(f"{p}.3", cout)
            cin, idx = cout, idx + 1
    last = _divisible(1280 * max(1.0, width))
    conv_bn("features.18", cin, last, 1)
    shapes["classifier.1.weight"] = (1000, last)
    shapes["classifier.1.bias"] = (1000,)
    return {
        k: torch.randint(0, 100, s) if k.endswith("num_batches_tracked") else torch.randn(s)
        for k, s in shapes.items()
    }


def small(**kw):
    return DeepLabV3Plus(num_classes=5, width_mult=0.5, decoder_channels=64, **kw)


def test_output_matches_odd_input_size():
    model = small().eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 65, 77) * 255)
    assert out.shape == (2, 5, 65, 77)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("os_", [16, 8])
@pytest.mark.parametrize("size", [(96, 128), (65, 77)])
def test_feature_strides(os_, size):
    model = small(output_stride=os_).eval()
    h, w = size
    with torch.no_grad():
        low, high = model.backbone(torch.rand(1, 3, h, w))
    # stride-2 3x3 convs with padding 1 give ceil(H / stride)
    assert low.shape[2:] == (math.ceil(h / 4), math.ceil(w / 4))
    assert high.shape[2:] == (math.ceil(h / os_), math.ceil(w / os_))
    assert low.shape[1] == model.backbone.low_level_channels
    # the reference code's backbone ends at the 320-channel block (×0.5 -> 160); no features.18
    assert high.shape[1] == model.backbone.high_level_channels == 160


def test_dilation_replaces_stride():
    feats = small(output_stride=16).backbone.features
    dw = {i: feats[i].conv[1][0] for i in range(2, 18)}  # depthwise conv of each expanding block
    assert dw[11].stride == (1, 1) and dw[11].dilation == (1, 1)
    assert dw[14].stride == (1, 1) and dw[14].dilation == (1, 1)  # first 160 block: stride dropped
    assert all(dw[i].dilation == (2, 2) and dw[i].padding == (2, 2) for i in (15, 16, 17))
    feats8 = small(output_stride=8).backbone.features
    assert feats8[7].conv[1][0].stride == (1, 1)  # first 64 block would reach stride 16
    assert feats8[8].conv[1][0].dilation == (2, 2)
    assert feats8[14].conv[1][0].dilation == (2, 2) and feats8[14].conv[1][0].stride == (1, 1)
    assert feats8[17].conv[1][0].dilation == (4, 4)


def test_batch_of_one_in_train_mode_and_gradients():
    model = small().train()
    out = model(torch.rand(1, 3, 64, 64) * 255)
    out.logsumexp(1).mean().backward()
    assert model.backbone.features[0][0].weight.grad.abs().sum() > 0
    assert model.classifier.weight.grad.abs().sum() > 0
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


def test_param_groups_partition_all_parameters():
    model = small()
    bb = {id(p) for p in model.backbone_parameters()}
    head = {id(p) for p in model.head_parameters()}
    assert not bb & head
    assert bb | head == {id(p) for p in model.parameters()}
    assert len(bb) + len(head) == len(list(model.parameters()))


def test_backbone_param_count_matches_torchvision():
    # torchvision mobilenet_v2(): 3,504,872 parameters, 1,281,000 of them in the classifier and
    # 412,160 in the last 1x1 conv (features.18: 320·1280 weights + 2·1280 BN), which the
    # reference's DeepLabV3+ backbone leaves out
    model = DeepLabV3Plus(num_classes=21, decoder_channels=64)
    assert sum(p.numel() for p in model.backbone_parameters()) == 3_504_872 - 1_281_000 - 412_160


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "module"])
def test_load_torchvision_keys(tmp_path, wrap):
    sd = torchvision_state_dict(1.0)
    saved = {"state_dict": sd, "epoch": 3} if wrap == "state_dict" else sd
    if wrap == "module":
        saved = {"module." + k: v for k, v in sd.items()}
    path = tmp_path / "mnv2.pth"
    torch.save(saved, path)
    model = DeepLabV3Plus(num_classes=21, decoder_channels=64)
    load_backbone_weights(model, path)
    f = model.backbone.features
    assert torch.equal(f[0][0].weight, sd["features.0.0.weight"])
    assert torch.equal(f[16].conv[1][1].running_mean, sd["features.16.conv.1.1.running_mean"])
    assert torch.equal(f[1].conv[1].weight, sd["features.1.conv.1.weight"])
    assert torch.equal(f[17].conv[2].weight, sd["features.17.conv.2.weight"])
    assert model.backbone.high_level_channels == 320  # features.18 of the file was left out


def test_wrong_width_names_key_and_file(tmp_path):
    path = tmp_path / "w10.pth"
    torch.save(torchvision_state_dict(1.0), path)
    with pytest.raises(ConfigError, match=r"w10\.pth.*features\.0\.0\.weight: shape \(32,3,3,3\) in file, \(16,3,3,3\)"):
        load_backbone_weights(small(), path)


def test_missing_and_unexpected_keys(tmp_path):
    sd = torchvision_state_dict(0.5)
    del sd["features.5.conv.2.weight"]
    torch.save(sd, tmp_path / "a.pth")
    with pytest.raises(ConfigError, match=r"a\.pth.*missing.*features\.5\.conv\.2\.weight"):
        load_backbone_weights(small(), tmp_path / "a.pth")
    sd = torchvision_state_dict(0.5)
    sd["features.19.0.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "b.pth")
    with pytest.raises(ConfigError, match=r"b\.pth.*unexpected.*features\.19\.0\.weight"):
        load_backbone_weights(small(), tmp_path / "b.pth")


def test_garbage_and_missing_file(tmp_path):
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"this is not a checkpoint\n" * 10)
    with pytest.raises(ConfigError, match="garbage.pth") as e:
        load_backbone_weights(small(), bad)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="nope.pth"):
        load_backbone_weights(small(), tmp_path / "nope.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ConfigError, match="list.pth"):
        load_backbone_weights(small(), tmp_path / "list.pth")
