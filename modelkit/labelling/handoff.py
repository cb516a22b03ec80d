"""From labelling to training: whether training on the labelling folder would train on the
labels given, and the tidying that makes it so.

Training reads ``DATA/`` as it reads any dataset: every visible sub-folder is a class and loose
images are left out (the not-sure bin, the feature store, the journal and the trash are
dot-folders, so it never sees them). Two things a labelling folder can hold would train wrongly:
an ``unlabelled/`` folder (it would be read as a class) and a class folder left empty by an undo
(a class with no images). ``tidy_for_training`` removes folders that are empty, and only those
(``os.rmdir``: it never removes a file); ``training_problems`` says what is still in the way.
"""

from __future__ import annotations

import os

from modelkit.labelling.folder import LabelFolder, open_folder, shown

MIN_IMAGES = 2  # a class needs one image for training and one for validation


def _visible_files(folder: str) -> int:
    """Visible files under ``folder`` (links not followed); what training would read there."""
    count = 0
    for _here, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        count += sum(not f.startswith(".") for f in files)
    return count


def training_problems(folder: LabelFolder, from_list: bool = False) -> list[str]:
    """One sentence per reason training on ``folder.root`` would not train on the labels
    given, once ``tidy_for_training`` has removed the empty folders; empty when it is ready.
    ``from_list``: training reads a list of the labelled files (``pseudo``), not the folder, so
    what else the folders hold (images still to label, stray files) is not in the way."""
    out: list[str] = []
    counts = folder.counts()
    if sum(n > 0 for n in counts.values()) < 2:
        out.append("label images of two classes or more first: a classifier needs two")
    for cls, n in counts.items():
        if n == 0 and not from_list and _visible_files(folder.class_dir(cls)):
            out.append(f"class folder {shown(cls)!r} holds no image but other files")
        elif 0 < n < MIN_IMAGES:
            out.append(
                f"class {shown(cls)!r} has {n} image: training needs {MIN_IMAGES} a class "
                "(one is kept for validation)"
            )
    if not from_list and folder.inbox != folder.root and os.path.isdir(folder.inbox):
        name = shown(os.path.basename(folder.inbox))
        if left := _visible_files(folder.inbox):
            out.append(
                f"{name}/ still holds {left} file(s) and training reads every sub-folder as a "
                "class: label them, or put them in the not-sure bin"
            )
        elif any(True for _ in os.scandir(folder.inbox)):
            out.append(f"{name}/ holds hidden files: training would read it as a class")
    return out


def _remove_empty_tree(path: str) -> bool:
    """Remove ``path`` and the folders under it when no file is anywhere inside; True if gone."""
    if os.path.islink(path) or not os.path.isdir(path):
        return False
    for here, dirs, _files in os.walk(path, topdown=False):
        for d in dirs:
            sub = os.path.join(here, d)
            if not os.path.islink(sub):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass  # not empty: a file lives there
    try:
        os.rmdir(path)
    except OSError:
        return False
    return True


def tidy_for_training(root: str | os.PathLike) -> tuple[LabelFolder, list[str]]:
    """Remove the empty ``unlabelled/`` folder and empty class folders of ``root``, then read
    it again: (the folder, ``training_problems`` of it). Files are never touched; an undo moves
    a file back into a removed folder by making it again."""
    folder = open_folder(root)
    for path in [folder.class_dir(c) for c, n in folder.counts().items() if n == 0] + (
        [folder.inbox] if folder.inbox != folder.root else []
    ):
        _remove_empty_tree(path)
    folder = open_folder(folder.root)
    return folder, training_problems(folder)
