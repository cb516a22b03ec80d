"""``auto``'s race: the paths the data allows, trained briefly and judged on training images
held out from them, by successive halving, so the path a run takes is measured, not guessed.

The probe (``modelkit.recipes.probe``) says which backbone's frozen features are best; it cannot
say whether fine-tuning beats the head alone here, or whether a small network from scratch beats
ImageNet features on tiny or grayscale images. The race trains each path (``race_paths``) for a
slice of a share of the budget on most of a sample of the training images, scores it on the rest
of that sample, keeps the better half and gives it twice the time, until one is left. The
person's validation split is never read: the accuracy the run reports stays honest. The race's
runs are ordinary Trainer runs on a list of files (``setup.read_file_list``), no folder kept.
Same seed, same sample, same epochs, same winner.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelkit.data.file_list import write_file_list
from modelkit.errors import ModelkitError
from modelkit.recipes.facts import Facts
from modelkit.recipes.race_paths import RacePath, candidate_paths, estimate

if TYPE_CHECKING:
    from modelkit.recipes.race_heldout import KeepBestHeldOut

RACE_SHARE = 0.3  # the race may spend this share of the budget left after the probe
MIN_IMAGES = 60  # fewer training images than this: too few to hold a fair share out
MAX_IMAGES = 600  # training images the race samples at most: a race, not the run ...
# ... unless its classes need more: about 9 a class to train on and 3 to judge. With 600 of
# Caltech-101's 102 classes (4 a class to train on) the head alone beat the last stage on maps
# (0.865 against 0.854 held out) and the 15-minute run got 0.929, where the maps path gets 0.952
# (benchmarks/results/caltech101_15m_race_sample_cpu2.json)
PER_CLASS = 12
HELDOUT_SHARE = 0.25  # of the race's sample, held out to judge the paths on
FIT_SLACK = 1.5  # a path whose first run would cost more than this many slices is not raced
FIRST_EPOCHS = 8  # epochs of a path's first race run at most; each round doubles it
FIRST_HEAD_EPOCHS = 2  # head epochs of a two-phase path's first race run; each round doubles it
OVERRUN = 1.5  # past this share of its allowance the race ends with the leader of its last round
# the finalists' average is worth two models when it wins this share of the held-out images
# (one image at least) over the winner alone
ENSEMBLE_GAIN = 0.01


@dataclass
class RaceReport:
    """The paths raced, their held-out scores and seconds per round, the winner and why."""

    paths: list[RacePath]
    images: int  # training images the race trained on
    heldout: int  # training images it judged on
    winner: str = ""
    why: str = ""
    seconds: float = 0.0
    allowance: float = 0.0  # seconds the race was allowed
    minimum_budget: float = 0.0  # the least budget (after the probe) a race is run in
    skipped: str = ""  # why no race was run
    # the last round's paths with their held-out probabilities averaged: whether two models
    # would beat the winner (names, held-out accuracy, whether it wins by ENSEMBLE_GAIN images)
    ensemble: dict[str, Any] = field(default_factory=dict)
    base_settings: dict[str, Any] = field(default_factory=dict)  # what the paths' changes overlay
    notes: list[str] = field(default_factory=list)
    train_files: list[str] = field(default_factory=list, repr=False)
    heldout_files: list[str] = field(default_factory=list, repr=False)

    @property
    def winning(self) -> RacePath | None:
        return next((p for p in self.paths if p.name == self.winner), None)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if not k.endswith("_files")}
        out["table"] = self.table()
        return out

    def table(self) -> list[str]:
        """The race as aligned text lines: each path's held-out accuracy (epochs) per round,
        its seconds and the settings it changes."""
        rounds = max((len(p.scores) for p in self.paths), default=0)
        head = f"{'path':<26}" + "".join(f" {f'round {r + 1}':>13}" for r in range(rounds))
        lines = [f"{head} {'seconds':>7}  settings changed"]
        for p in self.paths:
            cells = [
                f"{s:.3f} ({e} ep)" if s is not None else "failed"
                for s, e in zip(p.scores, p.epochs)
            ]
            cells += ["-"] * (rounds - len(cells))
            changes = ", ".join(f"{k}={v}" for k, v in p.changes.items()) or "none"
            row = f"{p.name:<26}" + "".join(f" {c:>13}" for c in cells)
            lines.append(f"{row} {sum(p.seconds):>7.1f}  {changes}")
        if self.ensemble:
            names = " + ".join(self.ensemble["paths"])
            verdict = "would help" if self.ensemble["helps"] else "would not help"
            lines.append(
                f"averaging the last round's {names}: {self.ensemble['heldout']:.3f} held out "
                f"({verdict})"
            )
        return lines


def race_units(n: int) -> int:
    """First-round slices successive halving spends on ``n`` paths: each round the better half
    goes on with twice the time, until one is left."""
    units, width = 0, 1
    while n > 1:
        units += n * width
        n, width = math.ceil(n / 2), width * 2
    return units


def race_sample(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(race training rows, held-out rows) of the training images: a sample of at most
    ``MAX_IMAGES`` (or ``PER_CLASS`` a class, where that is more), and of each class about
    ``HELDOUT_SHARE`` held out (one at least, where the class has two). The same for the same
    seed."""
    from modelkit.recipes.probe import probe_sample

    picked = probe_sample(labels, seed, max(MAX_IMAGES, PER_CLASS * len(np.unique(labels))))
    rng = np.random.default_rng(seed + 7)
    train, held = [], []
    for cls in np.unique(labels[picked]):
        rows = rng.permutation(picked[labels[picked] == cls])
        k = max(1, round(HELDOUT_SHARE * len(rows)))
        held.append(rows[:k])
        train.append(rows[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def plan(paths: list[RacePath], allowance: float) -> tuple[list[RacePath], float, list[str], float]:
    """(paths that fit, the first round's slice in seconds, a note per path left out, the
    least allowance in which the two cheapest paths could race)."""
    order = sorted(paths, key=lambda p: p.cost(1))  # cheapest first: it wins a tie in every round
    least = order[1].cost(1) * race_units(2) / FIT_SLACK if len(order) > 1 else math.inf
    notes = []
    while len(order) > 1 and order[-1].cost(1) > FIT_SLACK * allowance / race_units(len(order)):
        slow = order.pop()
        notes.append(f"{slow.name} left out: one epoch needs ~{slow.cost(1):.0f} s")
    return order, allowance / max(race_units(len(order)), 1), notes, least


def epochs_in(path: RacePath, seconds: float, round_: int, settings: dict[str, Any]) -> tuple:
    """(epochs, head epochs) of ``path``'s race run in a slice of ``seconds``."""
    cap = FIRST_EPOCHS * 2**round_
    fit = int(max(seconds - path.setup_s, 0) // max(path.epoch_s, 1e-6))
    trained = min(max(fit, 1), cap)
    if not path.two_phase:
        return trained, 0
    asked = int({**settings, **path.changes}.get("head_epochs") or 1)
    head = min(asked, FIRST_HEAD_EPOCHS * 2**round_)
    return head + trained, head


def race_config(
    settings: dict[str, Any], path: RacePath, files: str, epochs: int, head: int, seconds: float
):
    """The TrainConfig of one race run: the path's settings on the race's list of files, one
    cached pass (the centre crop) where it caches, and a time budget of its slice and a half:
    a machine slower than measured cuts a run's epochs rather than the run's budget."""
    from modelkit.config import TrainConfig

    run = {**settings, **path.changes}
    run.update(
        data_dir=files, epochs=epochs, head_epochs=head, early_stopping_patience=0,
        tta="none", eval_size=0, tensorboard=False, progressive_resize=False, warmup_epochs=0,
        monitor="val_acc", time_budget=FIT_SLACK * seconds, run_name="", feature_passes=1,
        runs_dir=str(Path(files).parent),
    )  # fmt: skip
    if run.get("freeze_backbone"):
        run["head_epochs"] = 0
    return TrainConfig(**run)


def train_once(config: Any) -> tuple[float | None, float, str, KeepBestHeldOut]:
    """(held-out accuracy of the best epoch, seconds, why it failed, its held-out
    probabilities) of one race run."""
    from modelkit.recipes.race_heldout import KeepBestHeldOut
    from modelkit.training.loop import Trainer

    kept = KeepBestHeldOut()
    started = time.perf_counter()
    try:
        result = Trainer(config, record=False, callbacks=[kept]).fit()
    except (ModelkitError, ValueError, RuntimeError) as exc:
        return None, time.perf_counter() - started, str(exc).splitlines()[0][:120], kept
    acc = result.best.get("val_acc")
    seconds = time.perf_counter() - started
    return (float(acc) if acc is not None else None), seconds, "", kept


def average_of(kept: list[KeepBestHeldOut]) -> float | None:
    """Held-out accuracy of the runs' probabilities averaged (one model's logits averaged over
    members is what an ensemble predicts); None when a run kept none."""
    if len(kept) < 2 or any(k.probs is None for k in kept):
        return None
    mean = np.mean([k.probs for k in kept], axis=0)
    return float((mean.argmax(1) == kept[0].labels).mean())


def run_race(
    facts: Facts,
    settings: dict[str, Any],
    train: list[tuple[str, int]],
    classes: list[str],
    allowance: float,
    seed: int = 0,
    paths: list[RacePath] | None = None,
) -> RaceReport:
    """Race ``paths`` (default: those ``race_paths`` finds for ``facts``) over auto's
    ``settings`` on the ``train`` images (path, label), in about ``allowance`` seconds."""
    started = time.perf_counter()
    labels = np.asarray([y for _, y in train])
    if len(train) < MIN_IMAGES:
        why = f"{len(train)} training images are too few to hold a fair share out ({MIN_IMAGES})"
        return RaceReport(paths or [], 0, 0, skipped=why)
    rows, held = race_sample(labels, seed)
    report = RaceReport([], len(rows), len(held), allowance=allowance)
    report.base_settings = dict(settings)
    report.train_files = [train[i][0] for i in rows]
    report.heldout_files = [train[i][0] for i in held]
    if paths is None:
        per_class = facts.images / max(facts.classes, 1)
        paths = candidate_paths(facts, settings, per_class)
    for p in paths:
        p.changes = {k: v for k, v in p.changes.items() if settings.get(k) != v}
        estimate(p, facts, settings, len(rows), len(held))
    kept, first, report.notes, least = plan(paths, allowance)
    report.paths, report.minimum_budget = kept, least / RACE_SHARE
    if len(kept) < 2:
        report.skipped = (
            f"a race needs ~{least:.0f} s ({RACE_SHARE:.0%} of a {least / RACE_SHARE:.0f} s "
            f"budget) for its two cheapest paths; {RACE_SHARE:.0%} of this budget is "
            f"{allowance:.0f} s"
            if len(paths) > 1
            else "only one path fits these images"
        )
        return report
    with tempfile.TemporaryDirectory(prefix="modelkit-race-") as tmp:
        split = {"train": [train[i] for i in rows], "val": [train[i] for i in held]}
        files = str(write_file_list(Path(tmp) / "race_files.json", classes, split))
        _halve(report, kept, settings, files, first, started)
    report.seconds = time.perf_counter() - started
    return report


def _halve(
    report: RaceReport,
    alive: list[RacePath],
    settings: dict[str, Any],
    files: str,
    first: float,
    started: float,
) -> None:
    order = list(alive)
    round_ = 0
    kept: dict[str, KeepBestHeldOut] = {}
    while len(alive) > 1:
        seconds = first * 2**round_
        kept = {}
        for p in alive:
            epochs, head = epochs_in(p, seconds, round_, settings)
            score, spent, failed, kept[p.name] = train_once(
                race_config(settings, p, files, epochs, head, seconds)
            )
            p.scores.append(score)
            p.epochs.append(epochs)
            p.seconds.append(spent)
            p.failed = p.failed or failed
        ranked = sorted(alive, key=lambda p: standing(p, order))
        alive = ranked[: math.ceil(len(alive) / 2)]
        round_ += 1
        if len(alive) > 1 and time.perf_counter() - started > OVERRUN * report.allowance:
            report.notes.append(f"round {round_ + 1} not run: the race was over its time")
            alive = ranked[:1]
    won = alive[0]
    report.winner = won.name
    _judge_ensemble(report, won, kept)
    rivals = [p for p in order if p is not won and len(p.scores) == len(won.scores)]
    score = won.scores[-1] or 0.0
    if rivals:
        best = min(rivals, key=lambda p: standing(p, order))
        report.why = (
            f"best held-out accuracy in round {len(won.scores)}: {score:.3f} against "
            f"{best.scores[-1] or 0.0:.3f} for {best.name}"
        )
        if best.scores[-1] == won.scores[-1]:
            report.why += tie_broken(won, best)
    else:
        report.why = f"the last path left ({score:.3f} held out)"


def standing(path: RacePath, order: list[RacePath]) -> tuple:
    """A path's place in a round (smaller is better): its held-out accuracy, a tie settled by
    its earlier rounds, the latest first, then by cost, the cheaper first. Not by cost alone:
    in the suite's four finals tied on held-out images the cheaper path (the head alone) lost
    on test to the path ahead in round 1 (benchmarks/results/race_ties_cpu2.json)."""
    return (*(-(s if s is not None else -1.0) for s in reversed(path.scores)), order.index(path))


def tie_broken(won: RacePath, other: RacePath) -> str:
    """How ``won`` beat ``other`` when their last round tied, for the race's why."""
    for r in range(len(won.scores) - 2, -1, -1):
        if won.scores[r] != other.scores[r]:
            return (
                f", a tie, which it won by round {r + 1} ({won.scores[r] or 0.0:.3f} against "
                f"{other.scores[r] or 0.0:.3f})"
            )
    return ", a tie in every round, which the cheaper path wins"


def _judge_ensemble(report: RaceReport, won: RacePath, kept: dict[str, KeepBestHeldOut]) -> None:
    """Whether averaging the last round's two best paths beats the winner alone on the
    held-out images by ENSEMBLE_GAIN images or more (recorded; the run trains the winner)."""
    score_of = {p.name: p.scores[-1] or -1.0 for p in report.paths}
    ranked = sorted(kept, key=lambda name: (name != won.name, -score_of.get(name, -1.0)))[:2]
    score = average_of([kept[name] for name in ranked])
    if score is None or won.scores[-1] is None:
        return
    gain = (score - won.scores[-1]) * report.heldout  # in images
    needed = max(1.0, ENSEMBLE_GAIN * report.heldout)
    report.ensemble = {
        "paths": ranked, "heldout": round(score, 4), "helps": gain >= needed - 1e-9,
    }  # fmt: skip


def race_auto(choice: Any, data_dir: str, explicit: dict[str, Any]) -> Any:
    """Race the paths open to ``choice`` (auto's AutoRecipe, measured) within its budget and
    lay the winner's settings over it, each with a line of why; the budget left shrinks by the
    race's seconds. The race is in ``facts.race`` either way (its ``skipped`` says why not)."""
    from modelkit.data.scan import scan_dataset

    facts: Facts = choice.facts
    if facts.probe is None or not facts.time_budget:
        facts.race = RaceReport([], 0, 0, skipped="nothing was measured to race with")
        return choice
    index = scan_dataset(
        data_dir, explicit.get("val_ratio", 0.2), explicit.get("test_ratio", 0.0),
        explicit.get("seed", 0),
    )  # fmt: skip
    train = [(s.path, s.label) for s in index.splits.get("train", [])]
    settings = {**choice.settings, **explicit}
    paths = candidate_paths(facts, settings, facts.images / max(facts.classes, 1))
    for p in paths:  # what the person gave is theirs, in the race as in the run
        p.changes = {k: v for k, v in p.changes.items() if k not in explicit}
    report = run_race(
        facts, settings, train, index.classes, RACE_SHARE * facts.time_budget,
        int(explicit.get("seed", 0)), paths,
    )  # fmt: skip
    facts.race = report
    facts.probe.race = report.to_dict()  # auto_search.json keeps what auto measured
    won = report.winning
    if won is None:
        return choice
    facts.time_budget = max(facts.time_budget - report.seconds, 1.0)
    why = f"won auto's race on held-out training images ({report.why}; the race table)"
    if not won.changes:
        choice.reasons.append(("", "kept its own path", why))
    for name, value in won.changes.items():
        if name not in explicit:
            choice.settings[name] = value
            choice.reasons.append((name, value, why))
    if facts.chosen_budget and "time_budget" in choice.settings:
        facts.chosen_budget = facts.time_budget
        choice.settings["time_budget"] = facts.time_budget
        choice.reasons.append(
            ("time_budget", facts.time_budget, f"less the {report.seconds:.0f} s the race took")
        )
    return choice
