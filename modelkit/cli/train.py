"""``train``: train a classifier on a folder (or ``--resume`` an interrupted run); prints the
run folder last, on its own line, so scripts can pick it up."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from modelkit.cli.common import (
    EXIT_STOPPED,
    UsageError,
    add_config_flags,
    add_dataset_flags,
    config_and_notes,
    echo,
    echo_lines,
    given_settings,
)


def _train(args: argparse.Namespace) -> int:
    from modelkit.runs.lock import refuse_if_locked
    from modelkit.training.distributed import is_main_process
    from modelkit.training.kept_maps import keeping_stage_maps
    from modelkit.training.loop import Trainer, TrainingError
    from modelkit.training.progress import ProgressPrinter

    search = None  # what auto measured (probe and race), for its second model
    if args.resume:
        if given_settings(args) or args.data or args.recipe or args.dataset:
            raise UsageError("train --resume takes no data folder or other settings")
        refuse_if_locked(args.resume)  # another process trains it: one writer per run
        trainer = Trainer.resume(args.resume)
    else:
        if not (args.data or args.dataset):
            raise UsageError("train needs a DATA folder, --dataset NAME or --resume RUN_DIR")
        from modelkit.recipes.notes import notes_callback

        # auto measures the backbones first; the run's log says the notes (once)
        config, notes, search = config_and_notes(args, measure=True, say=False)
        trainer = Trainer(config, callbacks=[notes_callback(notes, search)] if notes else [])
    printer = ProgressPrinter(sys.stderr)
    trainer.listeners.append(printer)
    if not args.resume:
        trainer.listeners.insert(0, _layout_logger(trainer))
    stop = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001
        print("\nstopping after this batch (Ctrl-C again to abort)", file=sys.stderr)
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    # Only the main thread may set handlers; the previous one is put back afterwards, so calling
    # main() in-process (tests, notebooks) does not leave Ctrl-C rewired.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_signal) if in_main else None
    run_dir = None
    try:
        fit_started = time.perf_counter()
        with keeping_stage_maps(bool(search)):  # auto's winner's maps, for its next runs
            result = trainer.fit(stop)
            run_dir = result.run_dir
            if not args.resume and result.state == "finished" and search and is_main_process():
                run_dir = _second_model(result, trainer.config, search, fit_started, stop, printer)
    except TrainingError as exc:
        raise TrainingError(f"training failed: {exc}") from exc
    finally:
        printer.close()
        if in_main:
            signal.signal(signal.SIGINT, previous)
    if is_main_process():  # under torchrun only rank 0 reports
        echo_lines(_summary(result), sys.stderr)
        echo(run_dir)
    return 0 if result.state == "finished" else EXIT_STOPPED


def _second_model(result, config, search, fit_started, stop, printer):
    """The run a person gets: auto's winner, or the ensemble of it and the race's runner-up
    where the race found two averaged better and the budget left allows (recipes.second_model)."""
    from modelkit.recipes.second_model import spend_what_is_left

    spent = time.perf_counter() - fit_started
    return spend_what_is_left(
        result.run_dir, config, search.get("race"), spent, stop, [printer],
        say=lambda line: echo(f"note: {line}", sys.stderr),
    )  # fmt: skip


def _layout_logger(trainer):
    """Once the run folder exists, say in its log (and on stderr) which dataset folder is used
    for what, e.g. that val was drawn from train/ because there is no val/ folder."""
    from modelkit.data.layouts import describe_layout
    from modelkit.events import Message, RunStarted

    def listen(event) -> None:
        if isinstance(event, RunStarted) and event.start_epoch == 0:
            note = describe_layout(trainer.config.data_dir, trainer.config.val_ratio)
            if note:
                trainer.emit(Message(note))

    return listen


def _summary(result) -> str:
    def fmt(m: dict) -> str:
        keys = ("train_loss", "train_acc", "val_loss", "val_acc", "val_top5")
        return ", ".join(f"{k}={m[k]:.4f}" for k in keys if isinstance(m.get(k), (int, float)))

    lines = [f"run {result.state}: {result.run_dir}"]
    if result.best:
        lines.append(f"best  (epoch {result.best.get('epoch')}): {fmt(result.best)}")
    if result.last:
        lines.append(f"last  (epoch {result.last.get('epoch')}): {fmt(result.last)}")
    return "\n".join(lines)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a classifier; prints the run folder last")
    p.add_argument(
        "data", nargs="?", help="dataset folder, or a built-in dataset: cifar10, cifar100, digits"
    )
    p.add_argument(
        "--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint"
    )
    p.add_argument(
        "--recipe",
        default="",
        help="settings preset (flags still win): auto (looks at the data, the weights here, the "
        "device and --time-budget, and says why it chose each setting), few-images, "
        "from-scratch-small-images, fine-tune-large. Default: none, the settings' own "
        "defaults, so a script means the same on any data",
    )
    add_dataset_flags(p)
    add_config_flags(p)
    p.set_defaults(func=_train)
