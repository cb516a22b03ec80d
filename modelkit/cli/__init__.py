"""The ``modelkit`` command (``python -m modelkit``): one module per subject.

- ``train``: train and resume (``train.py``)
- ``data``: ``check`` a dataset folder (``data.py``)
- ``use``: ``evaluate``, ``predict``, ``export``, ``embeddings`` of a trained run (``use.py``)
- ``ensemble``: average 2-3 finished runs into a new run (``ensemble.py``)
- ``runs``: list runs (``runs.py``)
- ``search``: ``tune`` (Optuna) and ``lr-find`` (``search.py``)
- ``clean``: label issues, near-duplicates, re-split and undo (``clean.py``)

``main.py`` builds the parser from each module's ``add_parsers`` and catches ``ModelkitError``
once. Every config flag is generated from TrainConfig's schema (``common.add_config_flags``).

Exit codes, the same for every command:

- 0: done.
- 2: the command line is wrong: argparse's usage errors, and settings given on the command line
  that TrainConfig refuses (every bad one named on one line), a recipe that does not exist,
  options that contradict each other. Fix the command and run it again.
- 1: the command line was fine but what it points at is not (a missing or broken dataset, run
  folder, checkpoint, a saved config.json that no longer validates), or the work failed
  (training, export). Any other ``ModelkitError`` and any ``OSError`` end here.
- 130: training was stopped with Ctrl-C; the run can be resumed.

Errors are one line on stderr, starting with ``error: ``; results go to stdout.
"""
