"""`pancakes export --bioimageio`: a package bioimage.io accepts, whose architecture and weights give
the labels of pancakes_model.segment."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from pancakes_data.preprocess import normalize_intensity
from pancakes_model import Pancakes, segment
from pancakes_model.app.bioimageio import demo_slices
from pancakes_model.app.cli import main
from pancakes_model.network.bioimageio import PancakesBioImageIO, normalize_images
from pancakes_model.render import PALETTE

spec = pytest.importorskip("bioimageio.spec")
# bioimageio.spec leaves the files it hashes open until its caches are collected (a third-party leak)
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def test_the_exported_package_validates_and_reproduces_segment(tmp_path, capsys):
    out = tmp_path / "pancakes.zip"
    assert main(["export", "--bioimageio", str(out), "-M", "4", "-K", "6"]) == 0
    descr = spec.load_description(out)
    assert descr.validation_summary.status in ("valid-format", "passed"), descr.validation_summary.format()
    assert [a.id for a in descr.inputs[0].axes] == ["batch", "set", "channel", "y", "x"]
    assert [a.id for a in descr.outputs[0].axes] == ["batch", "set", "protocol", "channel", "y", "x"]
    arch = descr.weights.pytorch_state_dict.architecture
    assert arch.import_from == "pancakes_model.network.bioimageio" and arch.kwargs["M"] == 4
    # what a bioimage.io runner does: import the callable, build it with its kwargs, load the state dict
    with zipfile.ZipFile(out) as zf:
        state = torch.load(zf.open("weights.pt"), weights_only=True)
        x = np.load(zf.open("test_input.npy"))
        y = np.load(zf.open("test_output.npy"))
        sample_in = np.asarray(Image.open(zf.open("sample_input.png")))
        sample_out = np.asarray(Image.open(zf.open("sample_output.png")))
    assert x.max() > 1.0  # raw intensities: the architecture normalises them itself
    # the pictures people see in the zoo are the test tensors: image 0 and its protocol 0's labels
    assert descr.inputs[0].sample_tensor is not None and descr.outputs[0].sample_tensor is not None
    np.testing.assert_array_equal(sample_in, x[0, 0, 0].astype(np.uint8))
    np.testing.assert_array_equal(sample_out, PALETTE[y[0, 0, 0].argmax(axis=0)])
    # no scale_range declared: a runner would take its percentiles over every pixel, not pancakes' > 0
    assert all(p.id == "ensure_dtype" for p in descr.inputs[0].preprocessing or [])
    net = PancakesBioImageIO(**arch.kwargs)
    net.load_state_dict(state)
    with torch.inference_mode():
        probs = net.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(probs, y, atol=1e-5)
    # the raw demo slices at the model grid, segmented as a user would: the package's argmax
    labels = segment(demo_slices(x.shape[1]), M=4, K=6, model=Pancakes.from_pretrained())
    for s in range(x.shape[1]):
        assert (probs[0, s].argmax(axis=1) == labels[s]).mean() > 0.999
    assert main(["export", "--bioimageio", str(out)]) == 2 and "exists" in capsys.readouterr().err


def test_bioimageio_core_runs_the_package(tmp_path):
    """What bioimage.io runs on a submission (`bioimageio test`): bioimageio.core rebuilds the
    architecture from the package alone, reproduces its test outputs and runs its inputs at several
    batch and set sizes. `nox -s tests` installs bioimageio.core in an environment of its own (it pins
    an older bioimageio.spec than the model suite validates with) and requires this test there."""
    if os.environ.get("PANCAKES_REQUIRE_BIOIMAGEIO_CORE"):
        import bioimageio.core as core
    else:
        core = pytest.importorskip("bioimageio.core")
    out = tmp_path / "pancakes.zip"
    assert main(["export", "--bioimageio", str(out), "-M", "4", "-K", "6"]) == 0
    summary = core.test_model(out)
    assert summary.status == "passed", summary.format()


def test_export_needs_a_zip_name(tmp_path, capsys):
    assert main(["export", "--bioimageio", str(tmp_path / "p.tar")]) == 2
    assert ".zip" in capsys.readouterr().err


def test_the_packaged_normalisation_is_pancakes_own():
    rng = np.random.default_rng(0)
    raw = rng.gamma(2.0, 40.0, size=(2, 3, 1, 32, 48)).astype(np.float32)
    raw[0, 0, 0, :8] = 0  # background: percentiles of the voxels > 0 only
    raw[1, 2] = 7.0  # a constant image becomes 0
    got = normalize_images(torch.from_numpy(raw), (0.5, 99.5)).numpy()
    for b in range(2):
        for s in range(3):
            np.testing.assert_allclose(got[b, s], normalize_intensity(raw[b, s]), atol=1e-6)
    assert not got[1, 2].any()
