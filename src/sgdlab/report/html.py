"""The self-contained HTML report: one file, no network needed to view it.

:func:`render_page` turns a *page* — plain data gathered by the lab
(:mod:`sgdlab.lab.page`) — into one HTML document with plotly.js, the style sheet, the
script (:mod:`sgdlab.report.page_assets`), every figure's data and the lab's PNG figures
inlined. It reads only what it is given and writes only the file :func:`write_page` names.

The page::

    {"title": str,
     "meta": [(label, value)],                 # header: versions, machine, mode, date …
     "tallies": [(kind, text)], "notes": [str],
     "findings": [{"study", "section", "kind", "claim", "quantity", "measured",
                   "predicted", "in_ci", "verdict", "derivation", "ci_method", "theory"}],
     "studies": [{"name", "section", "claim", "png": bytes | None, "png_name": str,
                  "figs": [figure id]}],
     "runs": {run id: {"label", "info": [(label, value)], "figs": [figure id],
                       "advice": [(kind, message)] | None}},
     "figs": {figure id: spec}}                # sgdlab.report.interactive specs

Why Plotly: the page needs zoom, hover values and log axes on every figure, in a file
that opens offline and can be mailed. plotly.js does all three out of the box, ships
inside the ``plotly`` Python package (so it is inlined without any download: a build or a
CI machine without network still writes the page), and takes figure specs as plain JSON,
so the figures are data built in Python and tested there. The cost is size: the
minified library is about 4.6 MB of the page. Vega-Lite would be lighter (~0.8 MB) but is
not shipped by any Python package (it would be vendored by hand) and needs parameter
bindings for what Plotly does by default; hand-written SVG would be smallest but would
re-implement zoom and hover. matplotlib stays for the paper figures (PNG/SVG).
"""

from __future__ import annotations

import base64
import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sgdlab.report.page_assets import CSS, JS

#: the order of verdicts in the filter
VERDICTS = ("agrees", "disagrees", "inconclusive", "no_claim")
_MARK = {"agrees": "✓ agrees", "disagrees": "✗ disagrees", "inconclusive": "? inconclusive",
         "no_claim": "– no claim"}  # fmt: skip


def plotly_js() -> str:
    """The minified plotly.js bundled with the ``plotly`` package (no network)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def e(x: object) -> str:
    """HTML-escaped text."""
    return html.escape(str(x), quote=True)


def anchor(name: str) -> str:
    """The id of a study's section (``fig-<name>``), used by the findings' figure links."""
    return "fig-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def _script_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>`` can close it)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def _header(page: dict[str, Any]) -> str:
    meta = "".join(f"<span>{e(k)}: <b>{e(v)}</b></span>" for k, v in page.get("meta", []))
    return (f"<header><h1>{e(page.get('title', 'sgdlab report'))}</h1>"
            f'<div class="meta">{meta}</div></header>')  # fmt: skip


def _select(ident: str, label: str, options: list[tuple[str, str]]) -> str:
    opts = '<option value="">all</option>' + "".join(
        f'<option value="{e(v)}">{e(t)}</option>' for v, t in options
    )
    return f'<label for="{ident}">{e(label)}</label> <select id="{ident}">{opts}</select>'


def _findings_section(page: dict[str, Any]) -> str:
    findings = page.get("findings", [])
    tallies = "".join(
        f'<div class="{e(kind)}"><b>{e(kind)}</b>: {e(text)}</div>'
        for kind, text in page.get("tallies", [])
    )
    notes = "".join(f'<p class="note">{e(n)}</p>' for n in page.get("notes", []))
    studies = list(dict.fromkeys(f["study"] for f in findings))
    kinds = list(dict.fromkeys(f["kind"] for f in findings))
    verdicts = [v for v in VERDICTS if any(f["verdict"] == v for f in findings)]
    filters = (
        '<div class="filters">'
        + _select("f-study", "study", [(s, s) for s in studies])
        + _select("f-kind", "kind", [(k, k) for k in kinds])
        + _select("f-verdict", "verdict", [(v, v.replace("_", " ")) for v in verdicts])
        + '<label for="f-text">text</label> <input id="f-text" type="search" size="18">'
        + f'<span id="f-count" class="note">{len(findings)} findings</span></div>'
    )
    head = ("<tr><th>#</th><th>study</th><th>kind</th><th>claim · quantity</th>"
            "<th>measured [95% CI]</th><th>reference</th><th>in CI</th><th>verdict</th>"
            "<th>tolerance derivation</th><th>figure</th></tr>")  # fmt: skip
    body, current = [], None
    for i, f in enumerate(findings, 1):
        i = f.get("n", i)
        section = f.get("section") or "other"
        if section != current:
            current = section
            body.append(f'<tr class="section-head" data-section="{e(section)}"><td colspan="10">'
                        f"{e(_section_title(section))}</td></tr>")  # fmt: skip
        derivation = f.get("derivation") or ""
        extra = " · ".join(x for x in (f.get("ci_method"), f.get("theory")) if x)
        deriv = (f"<details><summary>{e(f.get('tolerance_text') or 'how')}</summary>"
                 f"<div>{e(derivation)}{'<br>' + e(extra) if extra else ''}</div></details>"
                 if derivation or extra else "")  # fmt: skip
        link = f'<a href="#{anchor(f["study"])}">{e(f["study"])}</a>'
        body.append(
            f'<tr class="finding" data-study="{e(f["study"])}" data-kind="{e(f["kind"])}" '
            f'data-verdict="{e(f["verdict"])}" data-section="{e(section)}">'
            f"<td>{i}</td><td>{e(f['study'])}</td>"
            f'<td><span class="kind {e(f["kind"])}">{e(f["kind"])}</span></td>'
            f"<td>{e(f['claim'])}<br><i>{e(f['quantity'])}</i></td>"
            f'<td class="num">{e(f["measured"])}</td><td class="num">{e(f["predicted"])}</td>'
            f"<td>{e(f.get('in_ci', ''))}</td>"
            f'<td class="verdict v-{e(f["verdict"])}">{e(_MARK.get(f["verdict"], f["verdict"]))}'
            f"</td><td>{deriv}</td><td>{link}</td></tr>"
        )
    table = (f'<table class="findings"><thead>{head}</thead><tbody>{"".join(body)}</tbody>'
             "</table>" if findings else '<p class="empty">no findings in this report</p>')
    return (f'<section id="findings"><h2>Findings</h2><div class="tally">{tallies}</div>'
            f"{notes}{filters if findings else ''}{table}</section>")  # fmt: skip


def _section_title(section: str) -> str:
    return "other" if section == "other" else f"article §{section}"


def _card(fig_id: str, title: str) -> str:
    return (f'<div class="card"><div class="bar"><span>{e(title)}</span></div>'
            f'<div class="plot" data-fig="{e(fig_id)}"></div></div>')


def _studies_section(page: dict[str, Any]) -> str:
    parts = []
    figs = page.get("figs", {})
    for s in page.get("studies", []):
        cards = [_card(f, figs[f].get("title", "")) for f in s.get("figs", [])]
        if s.get("png"):
            data = base64.b64encode(s["png"]).decode()
            cards.insert(0, f'<div class="card"><div class="bar"><span>paper figure '
                            f"({e(s.get('png_name', ''))})</span></div>"
                            f'<img alt="{e(s["name"])} figure" '
                            f'src="data:image/png;base64,{data}"></div>')  # fmt: skip
        section = f" — article §{e(s['section'])}" if s.get("section") else ""
        parts.append(
            f'<div class="study" id="{anchor(s["name"])}"><h3>'
            f'<a href="#{anchor(s["name"])}">{e(s["name"])}</a>{section}</h3>'
            f'<p class="note">{e(s.get("claim", ""))}</p>'
            f'<div class="grid">{"".join(cards)}</div></div>'
        )
    if not parts:
        return ""
    return ('<section id="studies"><h2>Studies</h2><p class="note">Drag to zoom, double-click '
            "to reset, hover for values; the switches set log axes. The findings plot shows "
            "each judged finding as (measured − reference) / SE with its 95% interval "
            "(±1.96) against the reference's tolerance band ±τ/SE (shaded).</p>"
            f"{''.join(parts)}</section>")  # fmt: skip


def _runs_section(page: dict[str, Any]) -> str:
    runs = page.get("runs", {})
    if not runs:
        return ('<section id="runs"><h2>Runs</h2><p class="empty">no runs in this report'
                "</p></section>")  # fmt: skip
    options = "".join(f'<option value="{e(rid)}">{e(r["label"])}</option>'
                      for rid, r in runs.items())  # fmt: skip
    return (f'<section id="runs"><h2>Runs</h2><div class="runbar"><label for="run-pick">'
            f'run ({len(runs)})</label> <select id="run-pick">{options}</select></div>'
            '<p class="note">Each metric across chains: the median and the 10–90% band; '
            "a run that sweeps a hyperparameter across its chains shows one band per value. "
            "Monitor runs show loss, gradient norm, learning rate, tr Σ, noise scale and "
            'temperature, with the advice.</p><div id="run-view"></div></section>')  # fmt: skip


def render_page(page: dict[str, Any]) -> str:
    """The HTML document of ``page`` (module docstring), everything inlined."""
    data = {"figs": page.get("figs", {}), "runs": page.get("runs", {})}
    nav = ('<nav><a href="#findings">Findings</a><a href="#studies">Studies</a>'
           '<a href="#runs">Runs</a></nav>')  # fmt: skip
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(page.get('title', 'sgdlab report'))}</title><style>{CSS}</style>"
        f"<script>{plotly_js()}</script></head><body>{_header(page)}{nav}<main>"
        f"{_findings_section(page)}{_studies_section(page)}{_runs_section(page)}</main>"
        f'<script id="sgdlab-data" type="application/json">{_script_json(data)}</script>'
        f"<script>{JS}</script></body></html>\n"
    )


def write_page(page: dict[str, Any], path: str | Path) -> Path:
    """Write :func:`render_page` to ``path`` (its folder is created) and return the path;
    the file is written whole (to a temporary name, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_page(page), encoding="utf-8")
    tmp.replace(path)
    return path


def generated_at() -> str:
    """The date shown in the header: UTC, to the minute."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
