"""Reading generated datasets: the shards ``pancakes-synth generate`` wrote (:class:`ShardDataset`,
a training source like any generator) and the same sets streamed without disk (:class:`SynthStream`).

Layout of a dataset folder: ``manifest.json`` (status, counts, the shard names) and
``shard-NNNNN.safetensors`` files of ``shard_sets`` sets each (images float16, labels uint8/uint16,
label counts, classes).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from pancakes_synth.recipe import SynthSet

__all__ = ["MANIFEST", "ShardDataset", "SynthStream", "shard_name"]

MANIFEST = "manifest.json"


def shard_name(k: int) -> str:
    return f"shard-{k:05d}.safetensors"


class ShardDataset(torch.utils.data.Dataset):
    """Sets from a generated directory: item i → dict(images (S, 1, H, W) float32,
    labels (S, H, W) int64, n_labels int, index int); :meth:`get` gives the same set as the
    generator's :class:`~pancakes_synth.SynthSet` (so shards are a training source like any
    generator). Shards are opened lazily (memory-mapped); shard names from the manifest must stay
    inside the directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        path = self.root / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"{self.root}: no {MANIFEST}; not a pancakes-synth dataset")
        self.manifest = json.loads(path.read_text(encoding="utf-8"))
        if self.manifest.get("status") != "complete":
            raise ValueError(
                f"{self.root}: generation did not finish (status {self.manifest.get('status')!r}); run with --resume"
            )
        self.shard_sets = int(self.manifest["shard_sets"])
        root = self.root.resolve()
        for name in self.manifest.get("shards", []):
            target = (root / str(name)).resolve()
            if not target.is_relative_to(root) or target == root:
                raise ValueError(f"{path}: shard path {name!r} leaves the dataset directory; refusing to read it")
        self._handles: dict[int, object] = {}

    @property
    def spec(self) -> str:
        return f"shards:{self.root}"

    def __len__(self) -> int:
        return int(self.manifest["n_sets"])

    def _shard(self, k: int):
        if k not in self._handles:
            self._handles[k] = safe_open(str(self.root / self.manifest["shards"][k]), framework="pt")
        return self._handles[k]

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"set index {i} out of range for {len(self)} sets")
        i %= len(self)
        k, j = divmod(i, self.shard_sets)
        fh = self._shard(k)
        images = fh.get_slice("images")[j : j + 1][0].float()
        labels = fh.get_slice("labels")[j : j + 1][0].long()
        n_labels = int(fh.get_slice("n_labels")[j : j + 1][0])
        return {"images": images[:, None], "labels": labels, "n_labels": n_labels, "index": i}

    def get(self, i: int):
        """Set ``i`` as a :class:`~pancakes_synth.SynthSet` (images float32, labels int64, classes)."""
        item = self[i]
        k, j = divmod(int(item["index"]), self.shard_sets)
        fh = self._shard(k)
        classes = None
        if "classes" in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
            row = fh.get_slice("classes")[j : j + 1][0].numpy()
            classes = row[: item["n_labels"]].astype(np.int64)
        images = item["images"][:, 0].numpy()
        return SynthSet(images, item["labels"].numpy(), item["n_labels"], {"index": item["index"]}, classes)

    def __getstate__(self):  # handles are per process (DataLoader workers reopen them)
        return {**self.__dict__, "_handles": {}}


class SynthStream(torch.utils.data.IterableDataset):
    """Endless on-the-fly sets, no disk: yields the same dicts as :class:`ShardDataset`.

    DataLoader workers take interleaved set indices (worker w of W: start + w, start + w + W, …),
    so a run is reproducible for a given number of workers.
    """

    def __init__(self, generator, *, start: int = 0) -> None:
        self.generator = generator
        self.start = start

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        i = self.start + wid
        while True:
            s = self.generator.generate(i)
            yield {
                "images": torch.from_numpy(s.images)[:, None],
                "labels": torch.from_numpy(s.labels),
                "n_labels": s.n_labels,
                "index": i,
            }
            i += nw
