"""Choosing the protocol from one annotated example (issue 16)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pancakes_model.app.cli import main
from pancakes_model.inference.matching import WARN_BELOW, rank_candidates


def maps_with(structure_labels, *, m_count=3, k=5, shape=(20, 20)):
    """(M, H, W) label maps: protocol 1 splits the square into ``structure_labels``; others are noise."""
    rng = np.random.default_rng(0)
    lab = rng.integers(0, k, (m_count, *shape))
    lab[1] = 0
    if len(structure_labels) == 1:
        lab[1, 5:15, 5:15] = structure_labels[0]
    else:
        lab[1, 5:15, 5:10] = structure_labels[0]
        lab[1, 5:15, 10:15] = structure_labels[1]
    lab[1, 16:19, 0:20] = 4  # a structure outside the mask
    return lab


def square():
    mask = np.zeros((20, 20), np.int64)
    mask[5:15, 5:15] = 1
    return mask


def test_a_known_structure_is_recovered():
    protocol, assignment, score, ranking = rank_candidates([maps_with([2])], [square()], K=5)
    assert (protocol, assignment, score) == (1, {1: (2,)}, 1.0)
    assert ranking[0].protocol == 1 and ranking[0].score >= ranking[-1].score


def test_a_structure_split_over_two_labels_is_recovered_as_their_union():
    protocol, assignment, score, _ = rank_candidates([maps_with([2, 3])], [square()], K=5)
    assert (protocol, assignment) == (1, {1: (2, 3)}) and score == 1.0


def test_the_union_rule_refuses_a_label_mostly_outside_the_mask():
    lab = maps_with([2])
    lab[1, 5:15, 14:20] = 3  # label 3: one column inside the mask, five outside
    protocol, assignment, _, _ = rank_candidates([lab], [square()], K=5)
    assert protocol == 1 and 3 not in assignment[1]


def test_several_examples_rank_by_the_mean_and_multi_label_masks_use_one_protocol():
    a, b = maps_with([2]), maps_with([2])
    b[0, 5:15, 5:15] = 1  # protocol 0 matches the second example only
    protocol, assignment, score, _ = rank_candidates([a, b], [square(), square()], K=5)
    assert (protocol, assignment, score) == (1, {1: (2,)}, 1.0)
    two = square()
    two[16:19, :] = 2  # a second structure drawn: label 4 of protocol 1
    protocol, assignment, score, _ = rank_candidates([maps_with([2])], [two], K=5)
    assert protocol == 1 and assignment == {1: (2,), 2: (4,)} and score == pytest.approx(1.0)


def disks(n=3, shape=(48, 64), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    out, masks = [], []
    for i in range(n):
        img = np.full(shape, 40.0)
        c = (18 + 2 * i, 22 + 3 * i)
        disk = (yy - c[0]) ** 2 + (xx - c[1]) ** 2 < 90
        img[disk] = 210
        img[30:44, 40:60] = 120
        out.append(np.clip(img + rng.normal(0, 4, shape), 0, 255).astype(np.uint8))
        masks.append(disk.astype(np.uint8))
    return out, masks


def test_match_command_writes_masks_json_report_and_reuse_in_segment(tmp_path, capsys):
    imgs, masks = disks(4)
    (tmp_path / "in").mkdir()
    for i, im in enumerate(imgs[1:]):
        Image.fromarray(im).save(tmp_path / "in" / f"x{i}.png")
    Image.fromarray(imgs[0]).save(tmp_path / "ex.png")
    Image.fromarray(masks[0] * 255).save(tmp_path / "ex_mask.png")
    out = tmp_path / "m"
    args = ["match", tmp_path / "in", "--example", tmp_path / "ex.png", "--mask", tmp_path / "ex_mask.png"]
    assert main([*map(str, args), "--out", str(out), "--quiet"]) == 0
    info = json.loads((out / "match.json").read_text(encoding="utf-8"))
    assert info["score"] > 0.8 and info["ranking"][0]["score"] == info["score"]
    for i in range(3):
        got = np.asarray(Image.open(out / "masks" / f"x{i}.png"))
        dice = 2 * (got & masks[i + 1]).sum() / (got.sum() + masks[i + 1].sum())
        assert dice > 0.8, (i, dice)
    assert (out / "report.html").is_file() and (out / "run.json").is_file() and (out / "stats.csv").is_file()
    seg = tmp_path / "seg"
    assert (
        main(["segment", str(tmp_path / "in"), "--out", str(seg), "--match", str(out / "match.json"), "--quiet"]) == 0
    )
    for i in range(3):
        assert (seg / "masks" / f"x{i}.png").read_bytes() == (out / "masks" / f"x{i}.png").read_bytes()
    code = main(
        ["segment", str(tmp_path / "in"), "--out", str(tmp_path / "s2"), "-M", "4", "--match", str(out / "match.json")]
    )
    assert code == 2 and "another model or M/K" in capsys.readouterr().err


def test_match_bad_inputs_and_the_warning(tmp_path, capsys):
    imgs, masks = disks(2)
    Image.fromarray(imgs[0]).save(tmp_path / "ex.png")
    Image.fromarray(imgs[1]).save(tmp_path / "in.png")

    def run(mask, *extra):
        Image.fromarray(mask).save(tmp_path / "mask.png")
        args = ["match", tmp_path / "in.png", "--example", tmp_path / "ex.png", "--mask", tmp_path / "mask.png"]
        code = main([*map(str, args), "--out", str(tmp_path / "o"), "--quiet", "--force", *extra])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return code, err

    assert run(np.zeros((10, 10), np.uint8))[1].count("shape") == 1
    code, err = run(np.zeros((48, 64), np.uint8))
    assert code == 2 and "is empty" in err
    three = masks[0].copy()
    three[0:3, 0:3] = 2
    code, err = run(three)
    assert code == 2 and "--multi-label" in err
    unrelated = np.zeros((48, 64), np.uint8)
    unrelated[2:6, 50:54] = 1  # a patch of plain background: no structure of any protocol is like it
    code, err = run(unrelated)
    assert code == 0 and "no candidate matches your example well" in err
    assert WARN_BELOW == 0.5
