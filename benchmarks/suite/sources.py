"""Where a suite set's files come from: a folder of a git repository at a pinned commit (a
snapshot under ``--mirrors``, or a clone), or a local folder.

Both kinds answer the same two questions, which files lie under the set's path and what bytes
each holds, so the builder never cares which one it reads. Reading a git tree goes through one
``git cat-file --batch`` process: a set draws a few thousand blobs out of tens of thousands, and
one process per file would cost more than the decoding.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path


class SourceError(RuntimeError):
    """A set's source cannot be read here; the message says what to fetch or where to look."""


class DirTree:
    """A local folder (``../shared/datasets/...``): the sets no public copy was found for."""

    def __init__(self, root: Path):
        if not root.is_dir():
            raise SourceError(f"{root} is not a folder here; this set is local-only")
        self.root = root
        self.label = str(root)

    def files(self) -> list[str]:
        return sorted(
            p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()
        )

    def read(self, paths: list[str]) -> Iterator[tuple[str, bytes]]:
        for path in paths:
            yield path, (self.root / path).read_bytes()


class GitTree:
    """``path`` inside ``commit`` of the git directory ``git_dir`` (bare or a work tree's .git)."""

    def __init__(self, git_dir: Path, commit: str, path: str = ""):
        self.git_dir, self.commit, self.path = git_dir, commit, path.strip("/")
        self.label = f"{git_dir}@{commit[:12]}:{self.path}"
        if self._git("cat-file", "-t", commit, check=False).strip() != "commit":
            raise SourceError(f"{git_dir} does not hold commit {commit}; fetch it again")
        self._oids: dict[str, str] = {}

    def _git(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["git", f"--git-dir={self.git_dir}", *args], capture_output=True, text=True
        )
        if check and done.returncode != 0:
            raise SourceError(f"git {' '.join(args[:2])} failed in {self.git_dir}: {done.stderr}")
        return done.stdout

    def files(self) -> list[str]:
        spec = f"{self.commit}:{self.path}" if self.path else self.commit
        listing = self._git("ls-tree", "-r", "-z", spec)
        for entry in filter(None, listing.split("\0")):
            meta, name = entry.split("\t", 1)
            mode, kind, oid = meta.split()
            if kind == "blob" and mode != "120000":  # symlinks are not images
                self._oids[name] = oid
        return sorted(self._oids)

    def read(self, paths: list[str]) -> Iterator[tuple[str, bytes]]:
        if not self._oids:
            self.files()
        proc = subprocess.Popen(
            ["git", f"--git-dir={self.git_dir}", "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            for path in paths:
                proc.stdin.write(f"{self._oids[path]}\n".encode())
                proc.stdin.flush()
                header = proc.stdout.readline().split()
                if len(header) < 3 or header[1] == b"missing":  # absent from a partial snapshot
                    yield path, b""
                    continue
                data = proc.stdout.read(int(header[2]))
                proc.stdout.read(1)  # the newline after each object
                yield path, data
        finally:
            proc.stdin.close()
            proc.wait()


def mirror_git_dir(mirrors: Path, repo: str) -> Path | None:
    """The git directory ``fetch`` left for ``owner/name``: ``owner+name/repo`` (bare) or
    ``owner+name/repo/.git``."""
    base = mirrors / repo.replace("/", "+") / "repo"
    for candidate in (base / ".git", base):
        if (candidate / "objects").is_dir():
            return candidate
    return None


def clone_git_dir(clones: Path, repo: str, commit: str) -> Path:
    """A bare clone of https://github.com/<repo> under ``clones`` that holds ``commit``."""
    target = clones / (repo.replace("/", "+") + ".git")
    url = f"https://github.com/{repo}"
    if not target.is_dir():
        done = subprocess.run(
            ["git", "clone", "--bare", "--quiet", url, str(target)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SourceError(f"cannot clone {url}: {done.stderr.strip()}")
    return target


def open_source(
    source: dict, *, mirrors: Path | None, clones: Path | None, repo_root: Path
) -> DirTree | GitTree:
    """The tree a manifest entry's ``source`` names, from the first place that has it: a
    mirror, then a clone (when ``clones`` is given and the network allows), else a clear error."""
    if "local" in source:
        return DirTree((repo_root / source["local"]).resolve())
    repo, commit, path = source["repo"], source["commit"], source.get("path", "")
    if mirrors is not None:
        git_dir = mirror_git_dir(mirrors, repo)
        if git_dir is not None:
            return GitTree(git_dir, commit, path)
    if clones is not None:
        return GitTree(clone_git_dir(clones, repo, commit), commit, path)
    where = f"no snapshot of {repo} under {mirrors}" if mirrors else "no --mirrors folder"
    raise SourceError(
        f"{where}, and cloning is off: fetch {repo} or pass --clone-dir DIR to git clone "
        f"https://github.com/{repo} at {commit}"
    )
