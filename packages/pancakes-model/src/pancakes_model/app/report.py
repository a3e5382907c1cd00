"""The self-contained HTML report, filled from ``templates/report.html`` (``string.Template``).

The overview picture is embedded once; each figure of the page shows one of its tiles (a CSS
sprite), so the page costs no further image encoding and stays about the size of overview.png.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from string import Template

from pancakes_model.render import grid_tile_origin, palette

__all__ = ["render_report"]


def render_report(
    *,
    stems: Sequence[str],
    overview_png: bytes,
    stats_rows: Sequence[dict],
    columns: Sequence[str],
    protocols: Sequence[int],
    meta: dict,
    n_inputs: int,
    match: dict | None = None,
) -> str:
    """The report page.

    Args:
        stems: names of the inputs shown (the overview's columns, in order).
        overview_png: the overview picture (rows: images, then one per protocol).
        stats_rows: statistics rows of the inputs shown.
        columns: the statistics columns to show.
        protocols: protocol numbers of the overview's rows.
        meta: run.json's content (model, SHA-256, M, K).
        n_inputs: all inputs of the run (the page shows ``len(stems)`` of them).
        match: the ``match.json`` record when a choice was applied (shown with its ranking).
    """
    esc = html.escape

    def tile(column: int, row: int, alt: str) -> str:
        x, y = grid_tile_origin(column, row)
        return (
            f'<figure><div class="t" role="img" aria-label="{esc(alt)}" style="background-position:-{x}px -{y}px">'
            f"</div><figcaption>{esc(stems[column])}</figcaption></figure>"
        )

    rows = []
    for m_out, m in enumerate(protocols):
        cells = "".join(tile(s, m_out + 1, f"{stem} protocol {m}") for s, stem in enumerate(stems))
        rows.append(f'<section id="m{m:02d}"><h2>Protocol {m}</h2><div class="row">{cells}</div></section>')
    colours = palette(max(int(meta["K"]), 1))

    def swatch(label: int) -> str:
        r, g, b = (int(c) for c in colours[label])
        return f'<span class="sw" style="background:rgb({r},{g},{b})"></span>'

    table = "".join(
        "<tr>" + "".join(f"<td>{esc(str(r[k]))}</td>" for k in columns) + f"<td>{swatch(int(r['label']))}</td></tr>"
        for r in stats_rows
    )
    shown = len(stems)
    choice = ""
    if match is not None:
        ranking = "".join(
            f"<tr><td>{c['protocol']}</td><td>{esc(', '.join(map(str, c['labels'])))}</td>"
            f"<td>{c['score']:.3f}</td></tr>"
            for c in match["ranking"]
        )
        warning = f"<p><strong>Warning: {esc(match['warning'])}</strong></p>" if match["warning"] else ""
        choice = (
            f'<section id="match"><h2>Matched structure</h2><p>Protocol {match["protocol"]}, labels '
            f"{esc(str(match['assignment']))}: Dice {match['score']:.3f} on the example(s) "
            f"{esc(', '.join(Path(e).name for e in match['examples']))}; masks in <code>masks/</code>.</p>{warning}"
            + (f"<table><tr><th>protocol</th><th>labels</th><th>Dice</th></tr>{ranking}</table>" if ranking else "")
            + "</section>"
        )
    text = resources.files("pancakes_model.app").joinpath("templates/report.html").read_text(encoding="utf-8")
    return Template(text).substitute(
        overview=base64.b64encode(overview_png).decode(),
        n_inputs=n_inputs,
        n_protocols=len(protocols),
        K=meta["K"],
        M=meta["M"],
        model=esc(str(meta["model"])),
        model_sha=esc(meta["model_sha256"][:12]),
        shown_note=(
            f"Showing {shown} of {n_inputs} inputs, evenly spread over them; stats.csv covers every input."
            if shown < n_inputs
            else ""
        ),
        nav=" ".join(f'<a href="#m{m:02d}">{m}</a>' for m in protocols),
        originals="".join(tile(s, 0, stem) for s, stem in enumerate(stems)),
        match=choice,
        rows="".join(rows),
        stats_note="the inputs shown" if shown < n_inputs else "every input",
        header="".join(f"<th>{esc(c)}</th>" for c in columns),
        table=table,
    )
