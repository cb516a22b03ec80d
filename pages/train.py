"""Train: every TrainConfig knob in groups, a Launch button, and the live view of the job."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from modelkit.config import (
    HEADS,
    MONITORS,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULERS,
    ConfigError,
    TrainConfig,
)
from modelkit.device import pick_device
from modelkit.jobs import JobBusyError
from modelkit.models.registry import ARCHITECTURES, imagenet_weights_cached
from modelkit.recipes import PRESETS, recipe
from modelkit.training.distributed import gpu_count
from studio.live import live_view
from studio.lr_finder_panel import LR_KEY, lr_finder_panel
from studio.state import DATASET_KEY, job_registry, settings

st.header("Train")

D = TrainConfig.__dataclass_fields__
on_gpu = pick_device().type != "cpu"


def default(name: str):
    if name in PRESET:  # the chosen recipe fills the form's defaults
        return PRESET[name]
    f = D[name]
    return f.default_factory() if callable(f.default_factory) else f.default


live_slot = st.container()  # the live view sits above the form, where a person looks first
# A reloaded browser tab is a new session: start from the dataset of the job it finds.
last_job = job_registry().current
dataset = st.text_input(
    "Dataset folder",
    value=st.session_state.get(DATASET_KEY) or (last_job.config.data_dir if last_job else ""),
    help="Chosen on the Dataset page, or type a path: DATA/<class>/… or DATA/train|val/<class>/…",
)
if not dataset:
    st.info("Pick a dataset first.")
    st.page_link("pages/dataset.py", label="Choose a dataset →", icon=":material/folder_open:")

PRESET = recipe(
    st.selectbox(
        "Recipe",
        ["none", *PRESETS],
        help="Fills the form with settings for a situation; change any of them before launching. "
        "few-images: heavy augmentation, head first then fine-tuning, early stopping.",
    )
)

with st.form("train_form"):
    st.markdown("#### Model and weights")
    c1, c2, c3 = st.columns(3)
    arch = c1.selectbox(
        "Architecture", list(ARCHITECTURES), help="Bigger is slower; resnet18 is a good start."
    )
    cached = imagenet_weights_cached(arch)
    weights_choice = c2.selectbox(
        "Starting weights",
        ["ImageNet", "Random (from scratch)", "File or run folder"],
        index=0 if cached else 1,
        help="ImageNet weights learn fastest from few images. They are downloaded once "
        "(needs internet) into the torch cache"
        + ("; they are cached on this machine." if cached else "; not cached here yet."),
    )
    weights_path = c3.text_input("Weights file or run folder", help="For 'File or run folder'.")
    freeze = c1.toggle(
        "Freeze the backbone (train the head only)",
        value=False,
        help="Much faster; good with ImageNet weights and very few images.",
    )
    feature_cache = c2.toggle(
        "Cache backbone features",
        value=True,
        help="With a frozen backbone: compute its features once per augmentation pass and "
        "train the head on them; epochs then take a fraction of a second.",
    )
    feature_passes = c3.number_input(
        "Augmentation passes to cache",
        1,
        100,
        default("feature_passes"),
        help="Frozen backbone with augmentation: how many augmented versions of each image.",
    )

    st.markdown("#### Head")
    c1, c2, c3 = st.columns(3)
    head = c1.selectbox("Head", HEADS, help="linear: one layer. mlp: hidden layers with ReLU.")
    hidden = c2.text_input("Hidden sizes (mlp)", value="256", help="Comma-separated, e.g. 512,128")
    dropout = c3.slider("Dropout", 0.0, 0.9, float(default("head_dropout")), 0.05)

    st.markdown("#### Optimisation")
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Epochs", 1, 1000, PRESET.get("epochs", 10 if on_gpu else 5))
    batch_size = c2.number_input("Batch size", 1, 1024, default("batch_size"))
    image_size = c3.number_input(
        "Image size (px)",
        16,
        1024,
        224 if on_gpu else 128,
        step=16,
        help="Smaller trains much faster on a CPU; 224 is ImageNet's size.",
    )
    optimizer = c4.selectbox("Optimizer", OPTIMIZERS, OPTIMIZERS.index(default("optimizer")))
    c1, c2, c3, c4 = st.columns(4)
    lr = c1.number_input(
        "Learning rate",
        1e-6,
        10.0,
        st.session_state.get(LR_KEY) or default("lr"),  # the finder's suggestion, when taken
        format="%.5f",
    )
    backbone_lr = c2.number_input(
        "Backbone learning rate (0 = same)",
        0.0,
        10.0,
        default("backbone_lr") or 0.0,
        format="%.5f",
        help="A lower rate for pretrained layers often helps. Two-phase: the backbone's rate "
        "in phase 2 (0 = the fine-tuning rate).",
    )
    weight_decay = c3.number_input("Weight decay", 0.0, 1.0, default("weight_decay"), format="%.5f")
    momentum = c4.number_input("Momentum (SGD)", 0.0, 0.999, default("momentum"))
    c1, c2 = st.columns(2)
    label_smoothing = c1.slider("Label smoothing", 0.0, 0.5, default("label_smoothing"), 0.05)
    grad_clip = c2.number_input("Gradient clipping (max norm, 0 = off)", 0.0, 100.0, 0.0)
    c1, c2 = st.columns(2)
    head_epochs = c1.number_input(
        "Head-only epochs first (0 = off)",
        0,
        1000,
        default("head_epochs"),
        help="Two-phase fine-tuning: train the head alone on a frozen backbone for these epochs, "
        "then unfreeze everything and fine-tune at the lower rate.",
    )
    finetune_lr = c2.number_input(
        "Fine-tuning learning rate (phase 2; 0 = lr / 10)",
        0.0,
        10.0,
        default("finetune_lr") or 0.0,
        format="%.5f",
    )

    st.markdown("#### Schedule")
    c1, c2, c3, c4 = st.columns(4)
    scheduler = c1.selectbox("Schedule", SCHEDULERS, index=SCHEDULERS.index(default("scheduler")))
    step_size = c2.number_input("Step size (epochs)", 1, 1000, default("step_size"))
    gamma = c3.number_input("Gamma (decay factor)", 0.01, 1.0, default("gamma"))
    plateau_patience = c4.number_input("Plateau patience", 0, 100, default("plateau_patience"))

    st.markdown("#### Augmentation")
    c1, c2, c3, c4 = st.columns(4)
    crop = c1.slider("Random crop: area kept", 0.05, 1.0, (default("crop_scale_min"), 1.0), 0.05)
    hflip = c2.checkbox("Horizontal flip", value=True)
    vflip = c2.checkbox("Vertical flip", value=False, help="For photos with no up and down.")
    rotation = c3.slider("Rotation ±°", 0, 180, int(default("rotation")))
    shear = c3.slider("Shear ±°", 0, 45, 0)
    zoom = c4.slider("Zoom ±", 0.0, 0.5, default("zoom"), 0.05)
    c1, c2, c3, c4 = st.columns(4)
    brightness = c1.slider("Brightness", 0.0, 1.0, default("brightness"), 0.05)
    contrast = c2.slider("Contrast", 0.0, 1.0, default("contrast"), 0.05)
    saturation = c3.slider("Saturation", 0.0, 1.0, default("saturation"), 0.05)
    hue = c4.slider("Hue", 0.0, 0.5, default("hue"), 0.01)

    st.markdown("#### Stopping, compute and bookkeeping")
    c1, c2, c3, c4 = st.columns(4)
    patience = c1.number_input(
        "Early stopping patience (0 = off)", 0, 1000, default("early_stopping_patience")
    )
    monitor = c2.selectbox("Watch", MONITORS, MONITORS.index(default("monitor")))
    precision = c3.selectbox(
        "Precision", PRECISIONS, help="auto: bf16 on GPUs and on CPUs with native bf16."
    )
    seed = c4.number_input("Seed", 0, 2**31 - 1, 0)
    c1, c2, c3, c4 = st.columns(4)
    val_ratio = c1.slider("Validation share (class folders)", 0.05, 0.5, 0.2, 0.05)
    test_ratio = c2.slider("Test share (class folders)", 0.0, 0.4, 0.0, 0.05)
    channels_last = c3.checkbox("channels_last", value=True)
    compile_model = c3.checkbox("torch.compile", value=False, help="Slow first epoch; measure it.")
    run_name = c4.text_input("Run name (optional)")
    gpus = gpu_count()
    multi_gpu = gpus > 1 and st.toggle(
        f"Train on all {gpus} GPUs (torchrun, one process per GPU)",
        key="train_torchrun",
        help="Batch size is the global batch, split evenly over the GPUs.",
    )
    launch = st.form_submit_button(
        "Launch training", icon=":material/rocket_launch:", type="primary", disabled=not dataset
    )
    find_lr = st.form_submit_button(  # a submit button: the finder sees the form as it is now
        "Find a learning rate", icon=":material/query_stats:", disabled=not dataset
    )


def build_config() -> TrainConfig:
    weights = {"ImageNet": "imagenet", "Random (from scratch)": "none"}.get(
        weights_choice, weights_path.strip()
    )
    if not weights:
        raise ConfigError("weights: give a file or run folder, or choose ImageNet or Random")
    try:
        hidden_sizes = [int(x) for x in hidden.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(
            f"hidden sizes: expected numbers separated by commas, got {hidden!r}"
        ) from None
    return TrainConfig(
        data_dir=str(Path(dataset).expanduser()),
        val_ratio=val_ratio,
        test_ratio=test_ratio,
        arch=arch,
        weights=weights,
        head=head,
        head_hidden=hidden_sizes or [256],
        head_dropout=dropout,
        freeze_backbone=freeze,
        feature_cache=feature_cache,
        feature_passes=int(feature_passes),
        image_size=int(image_size),
        batch_size=int(batch_size),
        epochs=int(epochs),
        optimizer=optimizer,
        lr=float(lr),
        backbone_lr=float(backbone_lr) or None,
        head_epochs=int(head_epochs),
        finetune_lr=float(finetune_lr) or None,
        momentum=float(momentum),
        weight_decay=float(weight_decay),
        label_smoothing=float(label_smoothing),
        grad_clip=float(grad_clip),
        scheduler=scheduler,
        step_size=int(step_size),
        gamma=float(gamma),
        plateau_patience=int(plateau_patience),
        early_stopping_patience=int(patience),
        monitor=monitor,
        crop_scale_min=float(crop[0]),
        crop_scale_max=float(crop[1]),
        hflip=hflip,
        vflip=vflip,
        rotation=float(rotation),
        shear=float(shear),
        zoom=float(zoom),
        brightness=float(brightness),
        contrast=float(contrast),
        saturation=float(saturation),
        hue=float(hue),
        precision=precision,
        channels_last=channels_last,
        compile=compile_model,
        seed=int(seed),
        runs_dir=str(settings().runs_dir),
        run_name=run_name,
    )


if launch:
    try:
        if multi_gpu:
            job = job_registry().launch_subprocess(build_config(), gpus)
        else:
            job = job_registry().launch(build_config())
        st.toast(f"Training launched on {f'{gpus} GPUs' if multi_gpu else pick_device()}")
    except (ConfigError, JobBusyError) as exc:
        st.error(str(exc))

lr_finder_panel(build_config, run_now=find_lr)

with live_slot:
    live_view()
