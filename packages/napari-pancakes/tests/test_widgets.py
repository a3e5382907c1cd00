"""The widgets in a headless viewer (pytest-qt, napari's make_napari_viewer)."""

from __future__ import annotations

import numpy as np
import pytest

import pancakes_model
from napari_pancakes.engine import MODES
from napari_pancakes.widgets import MatchWidget, SegmentWidget


def blobs(h=40, w=48, seed=0, shift=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((h, w))
    img = np.where((yy - h / 2 - shift) ** 2 + (xx - w / 3) ** 2 < 80, 200.0, 40.0) + rng.normal(0, 4, (h, w))
    return img.astype(np.float32)


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def docked(viewer, widget):
    """The widget in the viewer's dock, so that it closes with the viewer."""
    viewer.window.add_dock_widget(widget)
    return widget


def wait(qtbot, widget, timeout=60_000):
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def test_labels_equal_pancakes_segment_and_keep_scale(viewer, qtbot):
    imgs = [blobs(seed=0), blobs(32, 36, seed=1, shift=2)]  # different sizes: one layer per image
    viewer.add_image(imgs[0], name="a", scale=(0.5, 0.25), translate=(3, 4))
    viewer.add_image(imgs[1], name="b")
    w = docked(viewer, SegmentWidget(viewer))
    w.layers_choice.value = ["a", "b"]
    w.M.value, w.K.value = 3, 4
    w.segment()
    wait(qtbot, w)
    expected = pancakes_model.segment(imgs, M=3, K=4)
    for name, ref in zip(("a", "b"), expected):
        layer = viewer.layers[f"{name} protocols"]
        np.testing.assert_array_equal(np.asarray(layer.data), ref)
    layer = viewer.layers["a protocols"]
    assert tuple(layer.scale) == (1.0, 0.5, 0.25) and tuple(layer.translate) == (0.0, 3.0, 4.0)
    w.keep_m.value = 2
    w.keep_protocol()
    np.testing.assert_array_equal(viewer.layers["a protocol 2"].data, expected[0][2])


def test_cancel_stops_the_worker(viewer, qtbot):
    stack = np.stack([blobs(seed=i) for i in range(12)])
    viewer.add_image(stack, name="stack")
    w = docked(viewer, SegmentWidget(viewer))
    w.mode.value = MODES[1]
    w.layers_choice.value = ["stack"]
    w.M.value, w.K.value = 2, 3
    w.segment()
    w.stop()
    wait(qtbot, w)
    done = [layer for layer in viewer.layers if layer.name.startswith("stack-")]
    assert len(done) < 12


def test_a_volume_uses_the_layer_scale_as_voxel_size(viewer, qtbot):
    vol = np.stack([blobs(seed=i) for i in range(5)])
    viewer.add_image(vol, name="vol", scale=(3.0, 0.5, 0.5))
    w = docked(viewer, SegmentWidget(viewer))
    w.mode.value = MODES[2]
    w.layers_choice.value = ["vol"]
    w.M.value, w.K.value = 2, 3
    w.segment()
    wait(qtbot, w)
    layer = viewer.layers["vol protocols"]
    assert layer.data.shape == (2, *vol.shape) and tuple(layer.scale) == (1.0, 3.0, 0.5, 0.5)
    from pancakes_model.inference.predict import predict_array

    model = pancakes_model.Pancakes.from_pretrained()
    np.testing.assert_array_equal(layer.data, predict_array(model, vol, M=2, K=3, spacing=(3.0, 0.5, 0.5), axis=0))


def test_match_returns_the_painted_structure(viewer, qtbot):
    imgs = [blobs(seed=i, shift=i) for i in range(3)]
    truth = [(np.asarray(im) > 120) for im in imgs]
    for i, im in enumerate(imgs):
        viewer.add_image(im, name=f"im{i}")
    viewer.add_labels(truth[0].astype(np.uint8), name="mask")
    w = docked(viewer, MatchWidget(viewer))
    w.layers_choice.value = ["im1", "im2"]
    w.example.value, w.mask.value = "im0", "mask"
    w.M.value, w.K.value = 4, 6
    w.find()
    wait(qtbot, w)
    for i in (1, 2):
        found = np.asarray(viewer.layers[f"im{i} matched"].data) > 0
        dice = 2 * (found & truth[i]).sum() / (found.sum() + truth[i].sum())
        assert dice > 0.8, (i, dice)
    assert "Dice" in w.result.value


def test_bad_input_is_a_notification_not_a_crash(viewer, qtbot, monkeypatch):
    shown = []
    monkeypatch.setattr("napari_pancakes.widgets.show_error", shown.append)
    viewer.add_image(np.zeros((2, 3, 16, 16), np.float32), name="four")
    viewer.add_labels(np.zeros((16, 16), np.uint8), name="lab")
    w = docked(viewer, SegmentWidget(viewer))
    w.layers_choice.value = []
    w.segment()
    w.mode.value = MODES[1]
    w.layers_choice.value = ["four"]
    w.segment()
    m = docked(viewer, MatchWidget(viewer))
    viewer.add_image(np.ones((16, 16), np.float32), name="flat")
    m.layers_choice.value = ["flat"]
    m.example.value, m.mask.value = "flat", "lab"
    m.find()
    assert len(shown) == 3 and "choose" in shown[0] and "4 dimensions" in shown[1] and "empty" in shown[2], shown
    assert [layer.name for layer in viewer.layers] == ["four", "lab", "flat"]


def test_export_writes_the_command_line_layout_and_never_overwrites(viewer, qtbot, tmp_path, monkeypatch):
    errors = []
    monkeypatch.setattr("napari_pancakes.widgets.show_error", errors.append)
    viewer.add_image(blobs(), name="a", scale=(0.5, 0.5), units=("micrometer", "micrometer"))
    w = docked(viewer, SegmentWidget(viewer))
    w.layers_choice.value = ["a"]
    w.M.value, w.K.value = 2, 3
    w.out.value = tmp_path / "out"
    w.export_outputs()
    wait(qtbot, w)
    for name in ("labels/a_m00.png", "labels/labels.txt", "stats.csv", "run.json", "report.html"):
        assert (tmp_path / "out" / name).is_file(), name
    assert "area_um2" in (tmp_path / "out" / "stats.csv").read_text().splitlines()[0]
    (tmp_path / "out" / "labels" / "notes.txt").write_text("mine")
    w.force.value = True
    w.export_outputs()
    wait(qtbot, w)
    assert errors and "was not written by pancakes" in errors[0]
    assert (tmp_path / "out" / "labels" / "notes.txt").read_text() == "mine"


def test_demo_sample_opens():
    from napari_pancakes.sample import demo_set

    layers = demo_set()
    assert len(layers) >= 2 and all(kind == "image" and data.ndim == 2 for data, _, kind in layers)


def _not_blank(path):
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.float32)
    saturated = (rgb.max(axis=2) - rgb.min(axis=2)) > 60  # label colours over a grey interface
    return rgb.std() > 20 and saturated.mean() > 0.05


def test_the_screenshot_shows_protocols_over_an_image(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    docs = Path(__file__).resolve().parents[3] / "docs"
    assert _not_blank(docs / "napari-pancakes.png")  # the picture in the READMEs
    if not os.environ.get("DISPLAY"):
        pytest.skip("regenerating the screenshot needs a display (the suite runs under xvfb-run)")
    out = tmp_path / "shot.png"
    subprocess.run([sys.executable, str(docs / "napari_screenshot.py"), "--out", str(out), "--settle", "1"],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    assert _not_blank(out)
