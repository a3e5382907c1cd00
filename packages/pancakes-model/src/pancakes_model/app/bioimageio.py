"""``pancakes export --bioimageio OUT.zip``: the model as a bioimage.io model package (format 0.5).

The package holds the weights as a PyTorch state dict with a reference to the architecture
(:class:`pancakes_model.network.bioimageio.PancakesBioImageIO`, importable from pancakes-model),
the input and output tensors with their axes, test tensors made by the shipped weights on the raw
demo slices (the intensity normalisation is inside the architecture, see
:mod:`pancakes_model.network.bioimageio`), sample PNGs of the first test image and its first
protocol for people browsing the zoo, a cover picture of their protocols, the licence
and the method's citation. It is validated with ``bioimageio.spec`` before it is written.

    input  images     (batch, set, channel = 1, y, x) float32 — a set of S raw images of one size
    output protocols  (batch, set, protocol = M, channel = K, y, x) float32 — softmax over K

``bioimageio.spec`` is an optional dependency (``pip install 'pancakes-model[bioimageio]'``).
"""

from __future__ import annotations

import gc
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from pancakes_data import UserError
from pancakes_data.palette import palette
from pancakes_model.__about__ import __version__
from pancakes_model.inference.predict import predict_array
from pancakes_model.network import Pancakes, resolve, sha256
from pancakes_model.network.bioimageio import PancakesBioImageIO
from pancakes_model.render import colour_labels, protocol_grid, save_png
from pancakes_model.samples import demo_inputs

__all__ = ["SIDE", "example_tensors", "export_bioimageio"]

SIDE = 128  # test tensors at the model grid: there pancakes_model.segment gives exactly their argmax
CITATION = (
    "Pancakes: consistent multi-protocol image segmentation across biomedical domains (NeurIPS 2025); "
    "the authors' inference release: https://github.com/mariannerakic/Pancakes"
)


def demo_slices(S: int = 2, side: int = SIDE) -> list[np.ndarray]:
    """The first S demo slices as grey float32 images of side × side."""
    from PIL import Image

    out = []
    for path in demo_inputs()[:S]:
        with Image.open(path) as im:
            out.append(np.asarray(im.convert("L").resize((side, side), Image.BILINEAR), np.float32))
    return out


def example_tensors(model: Pancakes, *, M: int, K: int, S: int = 2, side: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    """(raw images (1, S, 1, side, side), protocols (1, S, M, K, side, side)) from the demo slices."""
    x = np.stack(demo_slices(S, side))[None, :, None].astype(np.float32)
    with torch.inference_mode():
        y = PancakesBioImageIO.wrap(model, M=M, K=K)(torch.from_numpy(x)).numpy()
    return x, y


def _samples(x: np.ndarray, y: np.ndarray, root: Path) -> None:
    """The sample tensors bioimage.io shows people (the .npy test tensors are for machines): the
    first test image as grey PNG and its protocol 0 as a label map in the reports' colours."""
    save_png(np.clip(x[0, 0, 0], 0, 255).astype(np.uint8), root / "sample_input.png")
    labels = y[0, 0, 0].argmax(axis=0)
    save_png(colour_labels(labels), root / "sample_output.png")


def _cover(model: Pancakes, path: Path) -> None:
    slices = []
    for p in demo_inputs()[:3]:
        from PIL import Image

        with Image.open(p) as im:
            slices.append(np.asarray(im.convert("L"), np.float32))
    maps = [predict_array(model, s, M=4, K=12) for s in slices]
    grid = protocol_grid([s / 255.0 for s in slices], [[m[i] for i in range(4)] for m in maps])
    save_png(grid, path)


def export_bioimageio(
    out: str | Path, *, model: str | Path = "default", M: int = 8, K: int = 20, force: bool = False
) -> Path:
    """Write the package to ``out`` (a ``.zip``) and return its path; refused if it exists unless ``force``.

    Raises:
        UserError: ``out`` exists, is not a .zip, or bioimageio.spec is missing or refuses the package.
    """
    try:
        from bioimageio.spec import ValidationContext, save_bioimageio_package
        from bioimageio.spec.model import v0_5 as bio
    except ImportError:
        raise UserError("--bioimageio needs bioimageio.spec: pip install 'pancakes-model[bioimageio]'") from None
    out = Path(out)
    if out.suffix != ".zip":
        raise UserError(f"--bioimageio {out}: the package is a .zip file")
    if out.exists() and not force:
        raise UserError(f"--bioimageio {out} exists; pass --force to replace it")
    weights = resolve(model)
    net = Pancakes.from_pretrained(weights)
    with tempfile.TemporaryDirectory(prefix="pancakes-bioimageio-") as tmp:
        root = Path(tmp)
        x, y = example_tensors(net, M=M, K=K)
        np.save(root / "test_input.npy", x)
        np.save(root / "test_output.npy", y)
        torch.save(net.state_dict(), root / "weights.pt")
        _samples(x, y, root)
        _cover(net, root / "cover.png")
        (root / "README.md").write_text(_documentation(M, K, sha256(weights)), encoding="utf-8")
        pre = net.preprocess
        set_axis = bio.IndexInputAxis(
            id=bio.AxisId("set"),
            size=bio.ParameterizedSize(min=1, step=1),
            description="the images of one set (label k means the same structure in all)",
        )
        inputs = bio.InputTensorDescr(
            id=bio.TensorId("images"),
            # ≤ 128 characters (the spec's limit)
            description=(
                f"a set of raw grey images of one size, sides multiples of 16 (trained at {pre.size}²), "
                "scaled by the model"
            ),
            axes=[
                bio.BatchAxis(),
                set_axis,
                bio.ChannelAxis(channel_names=[bio.Identifier("grey")]),
                bio.SpaceInputAxis(id=bio.AxisId("y"), size=bio.ParameterizedSize(min=16, step=16)),
                bio.SpaceInputAxis(id=bio.AxisId("x"), size=bio.ParameterizedSize(min=16, step=16)),
            ],
            test_tensor=bio.FileDescr(source=root / "test_input.npy"),
            sample_tensor=bio.FileDescr(source=root / "sample_input.png"),
        )

        def same(axis: str) -> bio.SizeReference:
            return bio.SizeReference(tensor_id=bio.TensorId("images"), axis_id=bio.AxisId(axis))

        outputs = bio.OutputTensorDescr(
            id=bio.TensorId("protocols"),
            description=f"M = {M} protocols of K = {K} labels per image, softmax over the labels (argmax: label maps)",
            axes=[
                bio.BatchAxis(),
                bio.IndexOutputAxis(id=bio.AxisId("set"), size=same("set")),
                bio.IndexOutputAxis(id=bio.AxisId("protocol"), size=M),
                bio.ChannelAxis(channel_names=[bio.Identifier(f"label{k}") for k in range(K)]),
                bio.SpaceOutputAxis(id=bio.AxisId("y"), size=same("y")),
                bio.SpaceOutputAxis(id=bio.AxisId("x"), size=same("x")),
            ],
            test_tensor=bio.FileDescr(source=root / "test_output.npy"),
            sample_tensor=bio.FileDescr(source=root / "sample_output.png"),
        )
        descr = bio.ModelDescr(
            name="Pancakes multi-protocol set segmentation",
            description="M consistent segmentation protocols for a set of images from an unseen domain, no prompts",
            authors=[bio.Author(name="The Pancakes contributors")],
            cite=[bio.CiteEntry(text=CITATION, url=bio.HttpUrl("https://github.com/mariannerakic/Pancakes"))],
            license=bio.LicenseId("Apache-2.0"),
            tags=["segmentation", "unsupervised", "protocols", "2d", "pytorch", "microscopy", "mri"],
            covers=[bio.FileDescr(source=root / "cover.png")],
            documentation=bio.FileDescr(source=root / "README.md"),
            version=bio.Version(__version__),
            inputs=[inputs],
            outputs=[outputs],
            weights=bio.WeightsDescr(
                pytorch_state_dict=bio.PytorchStateDictWeightsDescr(
                    source=root / "weights.pt",
                    architecture=bio.ArchitectureFromLibraryDescr(
                        callable=bio.Identifier("PancakesBioImageIO"),
                        import_from="pancakes_model.network.bioimageio",
                        kwargs={
                            "config": PancakesBioImageIO.config_kwargs(net),
                            "M": M,
                            "K": K,
                            "percentiles": list(pre.percentiles),
                        },
                    ),
                    pytorch_version=bio.Version(torch.__version__.split("+")[0]),
                )
            ),
        )
        tmp_zip = out.with_name(f".tmp-{out.name}")
        with ValidationContext(perform_io_checks=True), warnings.catch_warnings():
            # bioimageio.spec re-reads its own file records while packaging and warns about their form
            warnings.filterwarnings("ignore", message="Found mapping with 'source'", category=UserWarning)
            warnings.simplefilter("ignore", ResourceWarning)  # it leaves files it hashed open …
            save_bioimageio_package(descr, output_path=tmp_zip)
            gc.collect()  # … closed here, before the temporary folder goes
        tmp_zip.replace(out)
    return out


def _documentation(M: int, K: int, digest: str) -> str:
    colours = palette(4)
    return f"""# Pancakes (pancakes-model {__version__})

Given a *set* of images from a domain the model never saw, Pancakes proposes M plausible
segmentation protocols at once, each a complete label map of up to K labels, consistent across the
set: label k of protocol m is the same structure in every image. This package holds the shipped
weights (SHA-256 `{digest[:16]}…`) with M = {M} and K = {K}; the architecture is
`pancakes_model.network.bioimageio.PancakesBioImageIO` from the `pancakes-model` package.

Input `images` (batch, set, channel, y, x): raw grey images, sides multiples of 16. The model
scales each image itself, as pancakes-model does: clipped to the 0.5–99.5 % percentiles of its
pixels > 0 and scaled to [0, 1] (bioimage.io's `scale_range` takes every pixel, so it is not
declared as a preprocessing step: a runner gives the same output as `pancakes segment`).
Output `protocols` (batch, set, protocol, channel, y, x): softmax over the K labels.

# Validation

The test tensors are the shipped weights' output on two demo slices (MNI152 2009c at {SIDE}², the
model grid, where `pancakes_model.segment` gives exactly the argmax of this output);
pancakes-model's tests check that this package validates with bioimageio.spec and that its
architecture and weights give the labels of `pancakes_model.segment`. The model's quality on
development data it never saw is in pancakes-model's MODEL_CARD.md.

Research use only, not for clinical decisions. Label colours of the reports: label 0
rgb{tuple(int(c) for c in colours[0])}, label 1 rgb{tuple(int(c) for c in colours[1])}, …
"""
