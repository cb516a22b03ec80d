"""Single-image classification latency: modelkit's Predictor against the bare forward pass and
against the reference preprocessing (PIL Resize + CenterCrop + ToTensor + Normalize).

The target: decode + preprocess + forward with a warm model within 1.3x of the bare forward of
the same model, and no slower than the reference path. Needs a run folder (its best.pt) and a
JPEG; without a run, one is trained for an epoch on a generated dataset first.

    python benchmarks/bench_predict.py --run runs/<id> --image photo.jpg
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision import transforms  # noqa: E402

from modelkit import Predictor  # noqa: E402


def _timeit(fn, repeat: int) -> float:
    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def _make_run(workdir: Path, image_size: int) -> Path:
    from modelkit import TrainConfig, Trainer

    rng = np.random.default_rng(0)
    for c in range(3):
        (workdir / "data" / f"class{c}").mkdir(parents=True)
        for i in range(6):
            arr = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
            Image.fromarray(arr).save(workdir / "data" / f"class{c}" / f"{i}.jpg")
    cfg = TrainConfig(
        data_dir=str(workdir / "data"),
        weights="none",
        epochs=1,
        image_size=image_size,
        batch_size=8,
        runs_dir=str(workdir / "runs"),
    )
    return Trainer(cfg).fit().run_dir


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run", type=Path, help="run folder or checkpoint")
    ap.add_argument("--image", type=Path, help="a JPEG; default: a generated 500x375 photo")
    ap.add_argument("--image-size", type=int, default=224, help="for the generated run")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = args.run or _make_run(tmp, args.image_size)
        image = args.image
        if image is None:
            image = tmp / "photo.jpg"
            yy, xx = np.mgrid[0:375, 0:500]
            arr = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)
            Image.fromarray(arr).save(image, quality=90)
        predictor = Predictor(run)
        model, device = predictor.model, predictor.device
        size, resize = predictor.image_size, predictor.resize_size
        x = torch.randn(1, 3, size, size).to(memory_format=torch.channels_last)

        from modelkit.device import autocast

        @torch.no_grad()
        def bare():
            with autocast(device, predictor.precision):
                model(x)

        reference_tf = transforms.Compose(
            [
                transforms.Resize(resize),
                transforms.CenterCrop(size),
                transforms.ToTensor(),
                transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
            ]
        )

        @torch.no_grad()
        def reference():
            t = reference_tf(Image.open(image).convert("RGB"))[None]
            with autocast(device, predictor.precision):
                model(t.to(memory_format=torch.channels_last))

        def ours():
            predictor.predict(image, top_k=5)

        batch = [image] * 16
        t_bare = _timeit(bare, args.repeat)
        t_ref = _timeit(reference, args.repeat)
        t_ours = _timeit(ours, args.repeat)
        t_batch = _timeit(lambda: predictor.predict_many(batch), max(3, args.repeat // 5)) / 16
    result = {
        "image": str(args.image or "generated 500x375 JPEG"),
        "bare_forward_ms": t_bare * 1000,
        "reference_path_ms": t_ref * 1000,
        "predictor_ms": t_ours * 1000,
        "predictor_batched_per_image_ms": t_batch * 1000,
        "predictor_over_bare_x": t_ours / t_bare,
        "predictor_over_reference_x": t_ours / t_ref,
    }
    for k, v in result.items():
        print(f"{k:<34}{v if isinstance(v, str) else f'{v:.2f}'}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
