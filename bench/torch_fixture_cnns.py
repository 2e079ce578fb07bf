"""ResNet-18 and MobileNetV2 (width 1.0) in plain torch.nn with BatchNorm already folded (convolutions
with a bias, as in the ONNX exports headstart trains), for bench/torch_finetune_step.py.

/work/pyenv has PyTorch 2.x but no torchvision (the local wheel index has none), so
../shared/models/fixtures-src/fixture_models.py cannot build these there. A step's time does not
depend on the weights' values, only on the layers, which follow torchvision's: the same
convolutions, strides, groups, residual connections and activations as the ONNX graphs.
"""
import torch.nn as nn


def conv(cin, cout, kernel, stride=1, groups=1, act=None):
    layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=True)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [conv(cin, hidden, 1, act=nn.ReLU6)]
        layers += [conv(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6), conv(hidden, cout, 1)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


def mobilenet_v2_features():
    """torchvision's mobilenet_v2().features: index 0 the stem, 1–17 the inverted residuals, 18 the 1×1 to 1280."""
    features = [conv(3, 32, 3, 2, act=nn.ReLU6)]
    cin = 32
    for expand, cout, repeats, stride in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(repeats):
            features.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
            cin = cout
    features.append(conv(cin, 1280, 1, act=nn.ReLU6))
    return nn.Sequential(*features)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = conv(cin, cout, 3, stride, act=nn.ReLU)
        self.conv2 = conv(cout, cout, 3)
        self.downsample = conv(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv2(self.conv1(x)) + self.downsample(x))


def resnet18_parts():
    """(stem + layer1–3, layer4) of torchvision's resnet18 without fc."""
    stem = [conv(3, 64, 7, 2, act=nn.ReLU), nn.MaxPool2d(3, 2, 1)]
    layers = []
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
        cin = cout
    return nn.Sequential(*stem, *layers[:3]), layers[3]
