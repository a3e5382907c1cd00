"""The dock widgets: Segment (M consistent protocols for a set) and Match (a painted structure).

Work runs in a napari ``thread_worker``: the viewer stays responsive, a progress bar counts the
images, Cancel stops after the image being segmented. Problems with the input (no layer chosen, a
Labels layer as the image, an empty mask, a full disk) become a napari notification naming them;
nothing crashes and no layer is removed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, ProgressBar, PushButton, Select, SpinBox
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning

from napari_pancakes.engine import MODES, SetImage, export_set, gather, labels_layer, segment_set
from pancakes_data import UserError, write_failure
from pancakes_model.app.common import MAX_K, MAX_M
from pancakes_model.inference.matching import match
from pancakes_model.network import Pancakes

__all__ = ["MatchWidget", "SegmentWidget"]


def _image_names(viewer) -> list[str]:
    return [layer.name for layer in viewer.layers if layer.__class__.__name__ == "Image"]


def _report(exc: BaseException) -> None:
    if isinstance(exc, UserError):
        show_error(str(exc))
    elif isinstance(exc, OSError) and (line := write_failure(exc)):
        show_error(line)
    else:  # a bug: keep the whole message so it can be reported
        show_error(f"{type(exc).__name__}: {exc}")


class _Base(Container):
    def __init__(self, viewer, model_path: str = "default") -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.model_path = model_path
        self._model: Pancakes | None = None
        self.worker = None
        self.M = SpinBox(value=8, min=1, max=MAX_M, label="protocols M")
        self.K = SpinBox(value=20, min=1, max=min(MAX_K, 256), label="labels K")
        self.device = ComboBox(choices=["cpu", "cuda"], value="cpu", label="device")
        self.progress = ProgressBar(value=0, min=0, max=1, label="progress")
        self.cancel = PushButton(text="Cancel", enabled=False)
        self.cancel.changed.connect(self.stop)
        # choices are functions of the viewer's layers, re-read on every change (napari also resets
        # them for docked widgets)
        viewer.layers.events.inserted.connect(self.reset_choices)
        viewer.layers.events.removed.connect(self.reset_choices)
        viewer.layers.events.renamed.connect(self.reset_choices)

    def _image_layer_names(self, *_) -> list[str]:
        return _image_names(self.viewer)

    def _labels_layer_names(self, *_) -> list[str]:
        return [layer.name for layer in self.viewer.layers if layer.__class__.__name__ == "Labels"]

    def model(self) -> Pancakes:
        if self._model is None:
            self._model = Pancakes.from_pretrained(self.model_path).set_memory_format("channels_last")
        return self._model.to(self.device.value)

    def stop(self, *_) -> None:
        if self.worker is not None:
            self.worker.quit()

    def _start(self, worker, total: int) -> None:
        self.worker = worker
        self.progress.max = max(total, 1)
        self.progress.value = 0
        self.cancel.enabled = True
        worker.errored.connect(_report)
        worker.finished.connect(self._finished)
        worker.start()

    def _finished(self) -> None:
        self.cancel.enabled = False
        self.worker = None


class SegmentWidget(_Base):
    """Segment the chosen images into M protocols of up to K labels, consistent across the set."""

    def __init__(self, napari_viewer, model_path: str = "default") -> None:
        super().__init__(napari_viewer, model_path)
        self.mode = ComboBox(choices=list(MODES), value=MODES[0], label="the set is")
        self.layers_choice = Select(choices=self._image_layer_names, label="image layers")
        self.axis = SpinBox(value=0, min=0, max=3, label="axis of the images / slicing axis")
        self.run = PushButton(text="Segment")
        self.keep_m = SpinBox(value=0, min=0, max=MAX_M - 1, label="protocol")
        self.keep = PushButton(text="Keep protocol m")
        self.out = FileEdit(mode="d", label="export to", value=Path.home() / "pancakes-out")
        self.force = CheckBox(value=False, text="replace an earlier Pancakes output")
        self.export = PushButton(text="Export (labels, labels.txt, stats.csv, run.json)")
        self.run.changed.connect(self.segment)
        self.keep.changed.connect(self.keep_protocol)
        self.export.changed.connect(self.export_outputs)
        self.extend([self.mode, self.layers_choice, self.axis, self.M, self.K, self.device, self.run, self.progress,
                     self.cancel, self.keep_m, self.keep, self.out, self.force, self.export])  # fmt: skip
        self.results: dict[str, tuple[SetImage, np.ndarray]] = {}

    def images(self) -> list[SetImage]:
        return gather(self.viewer.layers, mode=self.mode.value, names=list(self.layers_choice.value),
                      axis=int(self.axis.value))  # fmt: skip

    def segment(self, *_) -> None:
        """Start segmenting the chosen set (one Labels layer of shape (M, …) per image)."""
        try:
            images = self.images()
            model = self.model()
        except Exception as exc:
            _report(exc)
            return
        M, K, device = int(self.M.value), int(self.K.value), str(self.device.value)

        @thread_worker(ignore_errors=True)  # errors go to _report, as a notification
        def work():
            yield from segment_set(images, M=M, K=K, model=model, device=device)

        worker = work()
        worker.yielded.connect(lambda item: self._add(images[item[0]], item[1], K))
        self._start(worker, len(images))

    def _add(self, image: SetImage, labels: np.ndarray, K: int) -> None:
        data, kwargs = labels_layer(image, labels, K)
        name = kwargs["name"]
        if name in self.viewer.layers:  # a new run replaces its own earlier result, nothing else
            self.viewer.layers.remove(name)
        self.viewer.add_labels(data, **kwargs)
        self.results[name] = (image, labels)
        self.progress.value = self.progress.value + 1

    def keep_protocol(self, *_) -> None:
        """A plain Labels layer of protocol m for every image segmented."""
        m = int(self.keep_m.value)
        if not self.results:
            show_warning("segment a set first")
            return
        for _name, (image, labels) in self.results.items():
            if not 0 <= m < labels.shape[0]:
                show_error(f"protocol {m} does not exist: protocols are 0 … {labels.shape[0] - 1}")
                return
            self.viewer.add_labels(labels[m], name=f"{image.name} protocol {m}", scale=image.scale,
                                   translate=image.translate)  # fmt: skip

    def export_outputs(self, *_) -> None:
        """Write the command line's OUT layout through ``pancakes segment``'s pipeline."""
        try:
            images = self.images()
        except Exception as exc:
            _report(exc)
            return
        out, M, K = Path(self.out.value), int(self.M.value), int(self.K.value)
        device, force, model_path = str(self.device.value), bool(self.force.value), self.model_path

        @thread_worker(ignore_errors=True)  # errors go to _report, as a notification
        def work():
            return export_set(images, out, M=M, K=K, model_path=model_path, device=device, force=force)

        worker = work()
        worker.returned.connect(lambda meta: show_info(f"Pancakes: {len(meta['inputs'])} image(s) written to {out}"))
        self._start(worker, 1)


class MatchWidget(_Base):
    """Paint one structure on one image; the widget finds it in every image of the set."""

    def __init__(self, napari_viewer, model_path: str = "default") -> None:
        super().__init__(napari_viewer, model_path)
        self.layers_choice = Select(choices=self._image_layer_names, label="images of the set")
        self.example = ComboBox(choices=self._image_layer_names, label="annotated image")
        self.mask = ComboBox(choices=self._labels_layer_names, label="its mask (Labels)")
        self.run = PushButton(text="Match")
        self.result = Label(value="")
        self.run.changed.connect(self.find)
        self.extend([self.layers_choice, self.example, self.mask, self.M, self.K, self.device, self.run,
                     self.progress, self.cancel, self.result])  # fmt: skip

    def find(self, *_) -> None:
        """Choose the candidate that matches the mask on the example, then add it for every image."""
        try:
            if not self.example.value or not self.mask.value:
                raise UserError("choose the annotated image and the Labels layer painted on it")
            example = gather(self.viewer.layers, mode=MODES[0], names=[self.example.value])[0]
            images = gather(self.viewer.layers, mode=MODES[0], names=list(self.layers_choice.value))
            mask = np.asarray(self.viewer.layers[self.mask.value].data)
            if mask.shape != np.shape(example.array()):
                raise UserError(
                    f"the mask {self.mask.value!r} has shape {mask.shape}, the image {example.name!r} "
                    f"{np.shape(example.array())}; paint on a Labels layer of the image's size"
                )
            if not mask.any():
                raise UserError(f"the mask {self.mask.value!r} is empty: paint the structure to find")
            model = self.model()
        except Exception as exc:
            _report(exc)
            return
        M, K = int(self.M.value), int(self.K.value)

        @thread_worker(ignore_errors=True)  # errors go to _report, as a notification
        def work():
            return match([im.array() for im in images], example.array(), mask, M, K, model=model)

        worker = work()
        worker.returned.connect(lambda res: self._add(images, res))
        self._start(worker, 1)

    def _add(self, images: list[SetImage], result) -> None:
        for image, found in zip(images, result.masks):
            self.viewer.add_labels(found, name=f"{image.name} matched", scale=image.scale,
                                   translate=image.translate)  # fmt: skip
        labels = ", ".join(map(str, result.assignment[min(result.assignment)]))
        self.result.value = f"protocol {result.protocol}, labels {labels}: Dice {result.score:.3f} on the example"
        if result.warning:
            show_warning(result.warning)
        self.progress.value = 1
