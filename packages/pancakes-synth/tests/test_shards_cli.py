from __future__ import annotations

import json

import numpy as np
import pytest

from pancakes_synth import SetGenerator, ShardDataset, SynthStream, generate_dataset
from pancakes_synth.cli import main


def same_shard(a, b) -> bool:
    """Tensors and metadata equal (header key order is not stable across processes)."""
    from safetensors import safe_open

    with safe_open(str(a), framework="np") as fa, safe_open(str(b), framework="np") as fb:
        if fa.metadata() != fb.metadata() or sorted(fa.keys()) != sorted(fb.keys()):
            return False
        return all(np.array_equal(fa.get_tensor(k), fb.get_tensor(k)) for k in fa.keys())  # noqa: SIM118 - safe_open is not iterable


def test_shard_round_trip_matches_the_generator(tmp_path, small_source):
    m = generate_dataset(
        tmp_path / "out", n=12, set_size=3, source=small_source, seed=5, workers=1, shard_sets=3, progress=False
    )
    assert m["status"] == "complete"
    assert m["n_sets"] == 4
    assert len(m["shards"]) == 2
    ds = ShardDataset(tmp_path / "out")
    assert len(ds) == 4
    gen = SetGenerator(small_source, set_size=3, seed=5)
    for i in range(4):
        item, ref = ds[i], gen.generate(i)
        assert item["images"].shape == (3, 1, 128, 128)
        np.testing.assert_allclose(item["images"][:, 0].numpy(), ref.images, atol=1e-3)
        np.testing.assert_array_equal(item["labels"].numpy(), ref.labels)
        assert item["n_labels"] == ref.n_labels


def test_label_ids_beyond_255_are_stored_as_uint16(tmp_path, small_source, monkeypatch):
    from pancakes_synth.anatomix import SynthSet

    real = SetGenerator.generate

    def many_labels(self, index):
        out = real(self, index)
        if index == 1:  # the shard's second set: the first is already stored as uint8
            labels = out.labels.copy()
            labels[:, :2, :2] = 299
            return SynthSet(out.images, labels, 300, out.meta)
        return out

    monkeypatch.setattr(SetGenerator, "generate", many_labels)
    generate_dataset(
        tmp_path / "out", n=6, set_size=2, source=small_source, seed=0, workers=1, shard_sets=3, progress=False
    )
    ds = ShardDataset(tmp_path / "out")
    gen = SetGenerator(small_source, set_size=2, seed=0)
    assert int(ds[1]["labels"].max()) == 299
    for i in range(3):
        np.testing.assert_array_equal(ds[i]["labels"].numpy(), gen.generate(i).labels)


def test_two_workers_write_the_same_bytes_as_one(tmp_path, small_source):
    a = generate_dataset(tmp_path / "a", n=8, set_size=2, source=small_source, workers=1, shard_sets=2, progress=False)
    generate_dataset(tmp_path / "b", n=8, set_size=2, source=small_source, workers=2, shard_sets=2, progress=False)
    for name in a["shards"]:
        assert same_shard(tmp_path / "a" / name, tmp_path / "b" / name)


def test_resume_finishes_an_interrupted_run_without_redoing_shards(tmp_path, small_source):
    kw = {"n": 8, "set_size": 2, "source": small_source, "workers": 1, "shard_sets": 1, "progress": False}
    ref = generate_dataset(tmp_path / "ref", **kw)
    out = tmp_path / "out"
    generate_dataset(out, **kw)
    # Simulate kill -9 during shard 2: it never got renamed, a temp file is left, status running.
    (out / "shard-00002.safetensors").unlink()
    (out / "shard-00003.safetensors.tmp999").write_bytes(b"half a shard")
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    before = (out / "shard-00000.safetensors").stat().st_mtime_ns
    with pytest.raises(ValueError, match="not empty"):
        generate_dataset(out, **kw)
    with pytest.raises(ValueError, match="did not finish"):
        ShardDataset(out)
    generate_dataset(out, resume=True, **kw)
    assert (out / "shard-00000.safetensors").stat().st_mtime_ns == before
    assert not list(out.glob("*.tmp*"))
    for name in ref["shards"]:
        assert same_shard(out / name, tmp_path / "ref" / name)
    with pytest.raises(ValueError, match="different parameters"):
        generate_dataset(out, resume=True, **{**kw, "set_size": 4})


def test_refusals(tmp_path, small_source):
    out = tmp_path / "o"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    kw = {"n": 2, "set_size": 2, "source": small_source, "workers": 1, "progress": False}
    with pytest.raises(ValueError, match="not empty"):
        generate_dataset(out, **kw)
    with pytest.raises(ValueError, match="did not write"):
        generate_dataset(out, force=True, **kw)
    assert (out / "mine.txt").read_text() == "user data"
    with pytest.raises(ValueError, match="--n must be >= 1"):
        generate_dataset(tmp_path / "x", n=0, source=small_source)
    with pytest.raises(ValueError, match="exclude each other"):
        generate_dataset(tmp_path / "x", n=2, source=small_source, resume=True, force=True)


def test_force_replaces_an_earlier_output(tmp_path, small_source):
    kw = {"n": 2, "set_size": 2, "source": small_source, "workers": 1, "progress": False}
    generate_dataset(tmp_path / "o", seed=1, **kw)
    m = generate_dataset(tmp_path / "o", seed=2, force=True, **kw)
    assert m["seed"] == 2


def test_stream_splits_indices_between_workers(small_source):
    import torch

    stream = SynthStream(SetGenerator(small_source, set_size=2, seed=0))
    first = next(iter(stream))
    assert first["index"] == 0
    assert first["images"].shape == (2, 1, 128, 128)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
    seen = []
    for item in loader:
        seen.append(item["index"])
        if len(seen) == 4:
            break
    assert sorted(seen) == [0, 1, 2, 3]


def test_cli_generate_preview_and_errors(tmp_path, capsys):
    small = ["--cache-dir", str(tmp_path / "c"), "--bank-size", "16"]
    assert (
        main(
            [
                "generate",
                "--n",
                "4",
                "--set-size",
                "2",
                "--out",
                str(tmp_path / "d"),
                "--workers",
                "1",
                "--quiet",
                *small,
            ]
        )
        == 0
    )
    assert "4 pairs" in capsys.readouterr().out
    assert main(["generate", "--n", "4", "--out", str(tmp_path / "d"), *small]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["generate", "--n", "4", "--out", str(tmp_path / "e"), "--source", "labels:/nope"]) == 2
    assert "does not exist" in capsys.readouterr().err
    png = tmp_path / "p.png"
    assert main(["preview", "--out", str(png), "--sets", "2", "--set-size", "2", *small]) == 0
    from PIL import Image

    with Image.open(png) as im:
        assert im.size[0] > 128 * 2
        assert im.size[1] > 128 * 4


def test_shards_are_byte_identical_between_runs_and_readable_by_colleagues(tmp_path, small_source):
    import filecmp
    import os

    kw = {"n": 6, "set_size": 2, "source": small_source, "workers": 1, "shard_sets": 3, "progress": False}
    a = generate_dataset(tmp_path / "a", **kw)
    generate_dataset(tmp_path / "b", **kw)
    for name in a["shards"]:
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False), name
        mask = os.umask(0)
        os.umask(mask)
        assert os.stat(tmp_path / "a" / name).st_mode & 0o777 == 0o666 & ~mask


def test_manifest_shard_paths_cannot_leave_the_dataset(tmp_path, small_source):
    generate_dataset(tmp_path / "d", n=2, set_size=2, source=small_source, workers=1, progress=False)
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    manifest["shards"] = ["../../../../etc/passwd"]
    (tmp_path / "d" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="leaves the dataset directory"):
        ShardDataset(tmp_path / "d")


def test_shards_are_a_training_source_like_the_generator(tmp_path, small_source):
    generate_dataset(tmp_path / "d", n=6, set_size=3, source=small_source, seed=2, workers=1, progress=False)
    ds = ShardDataset(tmp_path / "d")
    gen = SetGenerator(small_source, set_size=3, seed=2)
    for i in range(2):
        a, b = ds.get(i), gen.get(i)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.classes, b.classes)
        np.testing.assert_allclose(a.images, b.images, atol=1e-3)


def test_an_unwritable_out_is_refused_before_any_work(capsys):
    assert main(["generate", "--n", "4", "--out", "/proc/pancakes-synth-cannot", "--quiet"]) == 2
    assert "not writable" in capsys.readouterr().err


@pytest.mark.slow
def test_dask_writes_the_shards_of_a_local_run(tmp_path, small_source):
    distributed = pytest.importorskip("distributed")
    kw = {"n": 8, "set_size": 2, "source": small_source, "shard_sets": 2, "progress": False}
    a = generate_dataset(tmp_path / "a", workers=1, **kw)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        generate_dataset(tmp_path / "b", client=client, **kw)
    import filecmp

    for name in a["shards"]:
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False), name
