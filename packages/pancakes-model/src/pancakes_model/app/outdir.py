"""One design for an output folder OUT: nothing the user had is overwritten or lost.

* OUT may not be, contain, or lie inside an input: refused before anything is written.
* An exclusive ``flock`` on ``OUT/.pancakes.lock`` is taken at the start and released by the kernel
  when the process ends, however it ends; a second run on a locked OUT stops at once.
* Results are written into ``OUT/.partial/`` with a manifest (inputs with size and mtime, M, K,
  model SHA-256, …); each input's files are recorded in ``done.jsonl`` once complete.
  ``run.json`` is written last and is the only completeness marker, so an interrupted run never
  looks complete. A stale ``.partial/`` is reused only by ``--resume`` with a matching manifest,
  and removed only by ``--force``.
* ``--force`` only ever removes the files an earlier Pancakes run wrote: ``run.json`` lists them
  (``outputs``); for an output of an older version the names are derived from its inputs ×
  protocols. Anything else anywhere below OUT — a note in ``labels/``, a folder, a symlink — makes
  it refuse, naming the first such path. OUT as a symlink means its target.
* OUT must be writable: checked by taking the lock, before any model is loaded or input read.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from pancakes_data import UserError
from pancakes_data.io import write_text
from pancakes_data.io.base import ImageData

__all__ = ["OUTPUTS", "OutputError", "OutputFolder"]

LOCK, PARTIAL, MANIFEST, DONE = ".pancakes.lock", ".partial", "manifest.json", "done.jsonl"
# what a Pancakes command writes into OUT (the only names --force removes)
OUTPUTS = ("labels", "masks", "overview.png", "report.html", "stats.csv", "match.json", "run.json")


class OutputError(UserError):
    """A problem with OUT (reported with exit code 2)."""


def _inside(a: Path, b: Path) -> bool:
    return a == b or a.is_relative_to(b)


class OutputFolder:
    """The life of one OUT: :meth:`open` (checks, lock, partial), writes, :meth:`finish`.

    Args:
        out: the output folder (created if missing; a symlink's target is used).
        inputs: the input paths as given (files or folders), never to be touched.
        force: replace an earlier Pancakes output / discard a stale partial run.
        resume: continue a partial run whose manifest matches.
        kind: the command (``"segment"``, ``"match"``), written into the manifest.
    """

    def __init__(
        self, out: str | Path, *, inputs: Sequence[str | Path], force: bool, resume: bool, kind: str = "segment"
    ) -> None:
        if force and resume:
            raise OutputError("--force and --resume exclude each other")
        self.given = Path(out)
        self.out = Path(os.path.realpath(self.given))
        self.inputs = [Path(os.path.realpath(p)) for p in inputs]
        self.force, self.resume, self.kind = force, resume, kind
        self.partial = self.out / PARTIAL
        self._lock: int | None = None
        self._created = False
        self.done: dict[str, dict] = {}
        self.removable: list[Path] = []  # the earlier run's files, which --force may remove

    # ------------------------------------------------------------------ checks and lock
    def open(self) -> OutputFolder:
        """Check OUT against the inputs, create it, lock it, and look at what it holds."""
        self._refuse_if_locked()
        for p in self.inputs:
            if _inside(self.out, p) or _inside(p, self.out):
                relation = "is" if self.out == p else ("lies inside" if _inside(self.out, p) else "contains")
                raise OutputError(
                    f"--out {self.given} {relation} the input {p}; choose an output folder apart from the inputs"
                )
        if self.out.exists() and not self.out.is_dir():
            raise OutputError(f"--out {self.given} exists and is a file, not a folder")
        if self.out.is_dir():  # refuse a foreign folder before writing even the lock file into it
            self._check_contents()
        try:
            self._created = not self.out.exists()
            self.out.mkdir(parents=True, exist_ok=True)
            self._lock = os.open(self.out / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OutputError(f"--out {self.given} is not writable: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock)
            self._lock = None
            raise OutputError(
                f"--out {self.given} is being written by another pancakes run (locked); wait for it"
            ) from exc
        try:
            self._check_contents()
        except BaseException:
            self.close()
            raise
        return self

    def _refuse_if_locked(self) -> None:
        """A run writing OUT right now holds the lock: say so, before judging what OUT holds."""
        lock = self.out / LOCK
        if not lock.is_file():
            return
        try:
            fd = os.open(lock, os.O_RDONLY)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            raise OutputError(
                f"--out {self.given} is being written by another pancakes run (it holds {LOCK}); "
                "wait for it to finish or choose another folder"
            ) from None
        finally:
            os.close(fd)

    def _check_contents(self) -> None:
        present = [p for p in self.out.iterdir() if p.name not in (LOCK, PARTIAL)]
        ours = [p for p in present if p.name in OUTPUTS]
        others = sorted(p.name for p in present if p.name not in OUTPUTS)
        complete = (self.out / "run.json").is_file()
        if present and not complete and not self.partial.is_dir():
            names = sorted(p.name for p in present)[:5]
            raise OutputError(
                f"--out {self.given} is not empty and holds no pancakes output ({names}); use a new folder"
            )
        if others:
            raise OutputError(
                f"--out {self.given} holds files pancakes did not write ({others[:5]}); refusing to touch it"
            )
        if self.partial.is_dir() and not self.resume and not self.force:
            raise OutputError(
                f"--out {self.given} holds an interrupted run ({PARTIAL}/); pass --resume to continue it "
                "or --force to discard it"
            )
        if ours and not self.force and not self.resume:
            raise OutputError(f"--out {self.given} holds an earlier pancakes output; pass --force to replace it")
        if ours and self.force:
            self.removable = self._earlier_outputs()
        if self.resume and not self.partial.is_dir():
            raise OutputError(f"--resume: {self.given} holds no interrupted run ({PARTIAL}/ is missing)")

    def close(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # the kernel drops the flock
            self._lock = None

    # ------------------------------------------------------------------ partial run
    def start(self, manifest: dict) -> dict[str, dict]:
        """Begin (or, with ``resume``, continue) the partial run; returns the inputs already done."""
        path = self.partial / MANIFEST
        manifest = json.loads(json.dumps(manifest))  # as it will be read back (tuples become lists)
        if self.resume:
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise OutputError(f"--resume: {path} is missing or damaged; start again with --force") from exc
            diff = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
            if diff:
                raise OutputError(
                    f"--resume: the interrupted run in {self.given} differs in {diff}; "
                    "rerun it as it was, or start again with --force"
                )
            self.done = self._read_done()
        else:
            if self.force:
                self._remove_earlier()
            (self.partial / "labels").mkdir(parents=True, exist_ok=True)
            write_text(path, json.dumps(manifest, indent=1, sort_keys=True))
        (self.partial / "labels").mkdir(parents=True, exist_ok=True)
        return self.done

    def _read_done(self) -> dict[str, dict]:
        done: dict[str, dict] = {}
        path = self.partial / DONE
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by the kill
                if all((self.partial / f).is_file() for f in row["files"]):
                    done[row["stem"]] = row
        return done

    def _earlier_outputs(self) -> list[Path]:
        """The files of the earlier output, checked: every file below OUT must be one of them."""
        listed = set(_listed_outputs(self.out))
        found = []
        for root, dirs, files in os.walk(self.out):
            here = Path(root)
            if here == self.out:
                dirs[:] = [d for d in dirs if d != PARTIAL]
                files = [f for f in files if f != LOCK]
            for name in sorted(dirs):
                if (here / name).is_symlink():  # a symlinked folder is the user's, whatever it holds
                    raise OutputError(f"--force: {here / name} was not written by pancakes; refusing to remove it")
            for name in sorted(files):
                rel = (here / name).relative_to(self.out).as_posix()
                if rel not in listed or (here / name).is_symlink():
                    raise OutputError(
                        f"--force: {here / name} was not written by pancakes; move it away or use another --out"
                    )
                found.append(here / name)
        return found

    def _remove_earlier(self) -> None:
        # run.json first: from this moment the old output no longer looks complete
        (self.out / "run.json").unlink(missing_ok=True)
        for path in self.removable:
            path.unlink(missing_ok=True)
        for name in ("labels", "masks"):  # their folders go too once empty (nothing else was in them)
            with contextlib.suppress(OSError):
                (self.out / name).rmdir()
        shutil.rmtree(self.partial, ignore_errors=True)

    def record(self, stem: str, files: Iterable[str], **extra) -> None:
        """Note that an input's files are complete (they survive an interrupted run)."""
        row = {"stem": stem, "files": list(files), **extra}
        # one line per input, appended once its files are written: safe against kill -9 (the page
        # cache survives the process); not fsynced, which would cost ~2 ms per input
        with (self.partial / DONE).open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        self.done[stem] = row

    # ------------------------------------------------------------------ the end
    def finish(self, run_json: dict) -> None:
        """Move everything from the partial folder into OUT; ``run.json`` (listing every file the
        run wrote, for a later ``--force``) last; drop the partial."""
        run_json["outputs"] = sorted(
            [p.relative_to(self.partial).as_posix() for name in OUTPUTS for p in _files(self.partial / name)]
            + ["run.json"]
        )
        for name in OUTPUTS:
            src = self.partial / name
            if name == "run.json" or not src.exists():
                continue
            dst = self.out / name
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            elif dst.exists():
                dst.unlink()
            os.replace(src, dst)
        write_text(self.out / "run.json", json.dumps(run_json, indent=1))
        shutil.rmtree(self.partial, ignore_errors=True)

    def abandon(self) -> None:
        """After a failure: a partial run that finished no input is removed (there is nothing to
        resume), and so is OUT itself when this run created it."""
        if self.partial.is_dir() and not self.done and not self.resume:
            shutil.rmtree(self.partial, ignore_errors=True)
            if self._created and {p.name for p in self.out.iterdir()} <= {LOCK}:
                (self.out / LOCK).unlink(missing_ok=True)
                self.out.rmdir()

    def __enter__(self) -> OutputFolder:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abandon()
        self.close()


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path] if path.is_file() else []


def _listed_outputs(out: Path) -> list[str]:
    """The files an earlier run says it wrote (``run.json``'s ``outputs``); for an output of a
    version before that list, its names derived from the inputs × protocols it records."""
    try:
        run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        run = None
    if not isinstance(run, dict):
        return []
    if isinstance(run.get("outputs"), list):
        return [str(p) for p in run["outputs"]]
    names = ["run.json", "overview.png", "report.html", "stats.csv", "match.json", "labels/labels.txt"]
    protocols = run.get("protocols") or list(range(int(run.get("M", 0))))
    for item in run.get("inputs", []):
        if not isinstance(item, dict) or "stem" not in item:
            continue
        suffix = ImageData(Path(), "", "2d", None, format=item.get("format", "")).label_suffix
        names += [f"labels/{item['stem']}_m{m:02d}{suffix}" for m in protocols]
        names.append(f"masks/{item['stem']}{suffix}")
    return names
