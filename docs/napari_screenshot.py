"""The napari-pancakes screenshot of the READMEs: the demo set, its protocols and the Segment widget.

    xvfb-run -a python docs/napari_screenshot.py [--out docs/napari-pancakes.png]

Headless (Xvfb gives Qt a display and Mesa a software OpenGL); writes the PNG and prints its size.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("napari-pancakes.png"))
    ap.add_argument("--settle", type=float, default=10.0, help="seconds for napari's start-up notices to fade")
    args = ap.parse_args()
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_pancakes.engine import gather, labels_layer, segment_set
    from napari_pancakes.sample import demo_set
    from napari_pancakes.widgets import SegmentWidget

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 860)
    for data, meta, _ in demo_set()[:3]:
        viewer.add_image(data, **meta)
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pancakes: segment", area="right")
    names = [layer.name for layer in viewer.layers]
    widget.layers_choice.value = names
    images = gather(viewer.layers, mode="2D image layers", names=names)
    model = widget.model()
    for i, labels in segment_set(images, M=8, K=20, model=model):
        data, kwargs = labels_layer(images[i], labels, 20)
        viewer.add_labels(data, **kwargs)
    shown = f"{names[-1]} protocols"
    for layer in viewer.layers:  # one image under its protocols; the other images' layers listed, hidden
        layer.visible = layer.name in (names[-1], shown)
    viewer.layers[shown].opacity = 0.55
    viewer.layers.selection.active = viewer.layers[shown]
    viewer.dims.set_current_step(0, 3)  # protocol 3 on the slider
    viewer.reset_view()
    deadline = time.monotonic() + args.settle  # let napari's start-up notification fade before the picture
    while time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.05)
    from qtpy.QtWidgets import QWidget

    for toast in viewer.window._qt_window.findChildren(QWidget):  # napari's own start-up notices
        if "Notification" in type(toast).__name__:
            toast.close()
    QApplication.processEvents()
    shot = viewer.screenshot(canvas_only=False, flash=False)
    from PIL import Image

    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(shot)).save(args.out)
    print(f"{args.out}: {shot.shape[1]}×{shot.shape[0]}")
    viewer.close()


if __name__ == "__main__":
    main()
