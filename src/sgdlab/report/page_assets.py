"""The HTML page's own style sheet and script (plotly.js itself is inlined beside them).

The script reads the page's data (``<script id="sgdlab-data" type="application/json">``):

* ``figs`` — Plotly specs by id (:mod:`sgdlab.report.interactive`), drawn into every
  ``<div class="plot" data-fig="ID">`` on load, each with "log x" / "log y" switches;
* ``runs`` — per run, its figure ids, summary and advice, drawn when the run is chosen in
  the run selector (so a store of many runs does not draw hundreds of figures at once).

Filters (study, kind, verdict, text) hide findings rows; a section heading whose rows are
all hidden is hidden too, and the count of shown rows is updated. A figure that fails to
draw is marked ``data-error`` (the browser test fails on it).
"""

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #dde1e8; --bg: #f6f7f9; --acc: #1f77b4; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--fg); background: var(--bg); }
header { background: #1d2330; color: #fff; padding: 14px 24px; }
header h1 { margin: 0 0 4px; font-size: 20px; }
header .meta { display: flex; flex-wrap: wrap; gap: 4px 18px; font-size: 12px;
               color: #c9cfdb; }
header .meta b { color: #fff; font-weight: 600; }
nav { position: sticky; top: 0; z-index: 5; background: #fff;
      border-bottom: 1px solid var(--line); padding: 6px 24px; display: flex; gap: 16px; }
nav a { color: var(--acc); text-decoration: none; font-weight: 600; }
main { padding: 10px 24px 40px; max-width: 1500px; }
section { margin: 18px 0 26px; }
h2 { font-size: 18px; margin: 10px 0; }
h3 { font-size: 15px; margin: 14px 0 6px; }
.tally { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0; }
.tally div { background: #fff; border: 1px solid var(--line); border-radius: 6px;
             padding: 6px 10px; }
.tally div.article { border-color: var(--acc); box-shadow: 0 0 0 1px var(--acc) inset; }
.note { color: var(--muted); font-size: 12.5px; max-width: 1100px; }
.filters { display: flex; flex-wrap: wrap; gap: 10px; align-items: center; margin: 8px 0;
           background: #fff; border: 1px solid var(--line); border-radius: 6px;
           padding: 8px 10px; }
.filters label { font-size: 12px; color: var(--muted); }
.filters select, .filters input { font: inherit; padding: 2px 4px; }
table.findings { border-collapse: collapse; width: 100%; background: #fff;
                 font-size: 12.5px; }
table.findings th, table.findings td { border-bottom: 1px solid var(--line);
                                       padding: 5px 6px; vertical-align: top; text-align: left; }
table.findings th { background: #eef1f5; position: sticky; top: 37px; z-index: 2; }
tr.section-head td { background: #e3e8f0; font-weight: 600; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
.verdict { font-weight: 600; white-space: nowrap; }
.v-agrees { color: #1a7f37; } .v-disagrees { color: #c62828; }
.v-inconclusive { color: #b26a00; } .v-no_claim { color: #6b7280; }
.kind { font-size: 11px; border-radius: 10px; padding: 1px 7px; background: #eef1f5;
        white-space: nowrap; }
.kind.article { background: #dbeafe; }
details summary { cursor: pointer; color: var(--acc); }
details div { color: var(--muted); max-width: 520px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr));
        gap: 12px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 6px; }
.card .bar { display: flex; justify-content: space-between; align-items: center;
             font-size: 12px; color: var(--muted); padding: 0 4px; }
.card .bar label { margin-left: 8px; }
.card img { max-width: 100%; height: auto; display: block; margin: auto; }
.plot { min-height: 200px; }
.study { background: #fff; border: 1px solid var(--line); border-radius: 6px;
         padding: 8px 12px; margin: 12px 0; }
.study h3 a { color: inherit; }
.runbar { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; margin: 8px 0; }
.runbar select { font: inherit; max-width: 100%; }
table.kv { border-collapse: collapse; font-size: 12.5px; margin: 6px 0; }
table.kv td { padding: 2px 10px 2px 0; vertical-align: top; }
table.kv td:first-child { color: var(--muted); white-space: nowrap; }
ul.advice li { margin: 3px 0; }
.empty { color: var(--muted); font-style: italic; }
"""

JS = r"""
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("sgdlab-data").textContent);
  var CONFIG = {responsive: true, displaylogo: false,
                modeBarButtonsToRemove: ["lasso2d", "select2d"]};

  function draw(el) {
    var spec = DATA.figs[el.getAttribute("data-fig")];
    if (!spec) { el.setAttribute("data-error", "no such figure"); return; }
    var layout = JSON.parse(JSON.stringify(spec.layout));
    layout.autosize = true;
    try {
      Plotly.newPlot(el, spec.data, layout, CONFIG).then(function () {
        el.setAttribute("data-rendered", "1");
      });
    } catch (e) {
      el.setAttribute("data-error", String(e));
      throw e;
    }
    var bar = el.parentNode.querySelector(".bar");
    if (bar && !spec.nolog) {
      addSwitch(bar, el, "x", spec.logx); addSwitch(bar, el, "y", spec.logy);
    }
  }

  function addSwitch(bar, el, axis, on) {
    var label = document.createElement("label");
    var box = document.createElement("input");
    box.type = "checkbox"; box.checked = !!on; box.className = "log" + axis;
    box.addEventListener("change", function () {
      var upd = {}; upd[axis + "axis.type"] = box.checked ? "log" : "linear";
      upd[axis + "axis.autorange"] = true;
      Plotly.relayout(el, upd);
    });
    label.appendChild(box); label.appendChild(document.createTextNode(" log " + axis));
    bar.appendChild(label);
  }

  function drawAll(root) {
    var plots = root.querySelectorAll(".plot[data-fig]");
    for (var i = 0; i < plots.length; i++) {
      if (!plots[i].getAttribute("data-drawn")) {
        plots[i].setAttribute("data-drawn", "1"); draw(plots[i]);
      }
    }
  }

  // ---- findings filters
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.finding"));
  var heads = Array.prototype.slice.call(document.querySelectorAll("tr.section-head"));
  function val(id) { var e = document.getElementById(id); return e ? e.value : ""; }
  function applyFilters() {
    var study = val("f-study"), kind = val("f-kind"), verdict = val("f-verdict");
    var text = val("f-text").toLowerCase(), shown = 0;
    rows.forEach(function (tr) {
      var ok = (!study || tr.dataset.study === study) && (!kind || tr.dataset.kind === kind) &&
               (!verdict || tr.dataset.verdict === verdict) &&
               (!text || tr.textContent.toLowerCase().indexOf(text) >= 0);
      tr.hidden = !ok; if (ok) { shown++; }
    });
    heads.forEach(function (h) {
      var any = rows.some(function (tr) {
        return !tr.hidden && tr.dataset.section === h.dataset.section;
      });
      h.hidden = !any;
    });
    document.getElementById("f-count").textContent = shown + " of " + rows.length + " findings";
  }
  ["f-study", "f-kind", "f-verdict", "f-text"].forEach(function (id) {
    var e = document.getElementById(id);
    if (e) {
      e.addEventListener("input", applyFilters); e.addEventListener("change", applyFilters);
    }
  });

  // ---- run dashboards
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  function showRun(id) {
    var box = document.getElementById("run-view");
    var run = DATA.runs[id];
    if (!box) { return; }
    if (!run) { box.innerHTML = '<p class="empty">no run chosen</p>'; return; }
    var html = '<table class="kv">';
    run.info.forEach(function (kv) {
      html += "<tr><td>" + esc(kv[0]) + "</td><td>" + esc(kv[1]) + "</td></tr>";
    });
    html += "</table>";
    if (run.advice) {
      html += "<h3>Advice</h3>";
      html += run.advice.length ? '<ul class="advice">' + run.advice.map(function (a) {
        return "<li><b>" + esc(a[0]) + "</b>: " + esc(a[1]) + "</li>"; }).join("") + "</ul>"
        : '<p class="empty">no rule fired</p>';
    }
    html += '<div class="grid">';
    run.figs.forEach(function (f) {
      html += '<div class="card"><div class="bar"><span>' + esc(DATA.figs[f].title || "") +
              '</span></div><div class="plot" data-fig="' + esc(f) + '"></div></div>';
    });
    html += "</div>";
    if (!run.figs.length) { html += '<p class="empty">no metrics stored for this run</p>'; }
    box.innerHTML = html;
    drawAll(box);
  }
  var pick = document.getElementById("run-pick");
  if (pick) {
    pick.addEventListener("change", function () { showRun(pick.value); });
    var hash = decodeURIComponent(location.hash.replace(/^#run-/, ""));
    if (DATA.runs[hash]) { pick.value = hash; }
    showRun(pick.value);
  }
  window.sgdlabShowRun = function (id) { if (pick) { pick.value = id; } showRun(id); };

  drawAll(document.getElementById("studies") || document);
  applyFilters();
})();
"""
