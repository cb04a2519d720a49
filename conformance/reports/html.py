"""One self-contained HTML page from run records: the gate, the feature
view, the matrix of probes (rows, grouped by feature and foldable) against
stacks and levels (columns) with coloured cells and filters by verdict, and
the facts of each level.

Every value reaches the page through one escaping function, `e`; HTML
this module builds from escaped parts is `Markup`, which `e` passes on.

Inline CSS and JavaScript, nothing loaded from anywhere. The tables are
plain HTML and read fine without JavaScript; the script adds folding,
filters and a search box.
"""

from __future__ import annotations

import html
import json

from .. import __version__
from ..core.printable import printable
from ..core.requirements import requirement_verdicts
from ..core.runrecord import RunRecord
from ..gate.features import exposed, feature_view, from_facts
from .common import columns, expected_text, groups, lookup, nesting_settings, outcome, why
from .text import describe_facts

OUTCOMES = ["PASS", "SKIP", "XFAIL", "XCRASH", "XTIMEOUT", "XPASS", "FAIL", "ERROR", "TIMEOUT", "CRASH"]
STATE_CLASS = {"conformant": "PASS", "not exposed": "SKIP", "untested": "SKIP", "failures": "FAIL"}

CSS = """
:root { --pass:#1a7f37; --pass-bg:#dafbe1; --skip:#57606a; --skip-bg:#eaeef2; --xfail:#7d4e00; --xfail-bg:#fff1c2;
  --fail:#cf222e; --fail-bg:#ffebe9; --error:#8250df; --error-bg:#fbefff; --timeout:#9a6700; --timeout-bg:#fff8c5; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em; color: #1f2328; }
h1 { font-size: 1.4em; margin: 0 0 .3em; } h2 { font-size: 1.15em; margin: 1.4em 0 .5em; }
.gate { display: inline-block; padding: .25em .7em; border-radius: 4px; font-weight: 600; }
.gate.holds { background: var(--pass-bg); color: var(--pass); } .gate.fails { background: var(--fail-bg); color: var(--fail); }
table { border-collapse: collapse; } th, td { border: 1px solid #d0d7de; padding: 3px 7px; text-align: left; vertical-align: top; }
thead th { background: #f6f8fa; position: sticky; top: 0; z-index: 1; } thead th small { font-weight: 400; color: #57606a; }
td.probe { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; white-space: nowrap; }
td.cell { white-space: nowrap; font-weight: 600; } td.cell small { display: block; font-weight: 400; white-space: normal;
  max-width: 32em; color: #57606a; }
.v-PASS { background: var(--pass-bg); color: var(--pass); } .v-SKIP { background: var(--skip-bg); color: var(--skip); }
.v-XFAIL, .v-XCRASH, .v-XTIMEOUT { background: var(--xfail-bg); color: var(--xfail); }
.v-XPASS { background: #ffd8b5; color: #953800; outline: 2px solid #bc4c00; outline-offset: -2px; }
.v-FAIL { background: var(--fail-bg); color: var(--fail); } .v-ERROR { background: var(--error-bg); color: var(--error); }
.v-TIMEOUT { background: var(--timeout-bg); color: var(--timeout); } .v-CRASH { background: var(--fail); color: #fff; }
.v-CRASH small { color: #fff; } .v-none { background: #fff; color: #8c959f; }
td.gatefail { box-shadow: inset 4px 0 0 var(--fail); }
tr.group th { background: #eef1f4; cursor: pointer; user-select: none; }
tr.group th::before { content: "\\25BE  "; } tbody.folded tr.group th::before { content: "\\25B8  "; }
tbody.folded tr.row { display: none; } tr.row.hidden { display: none; }
.filters { margin: .5em 0 1em; display: none; gap: .4em 1em; flex-wrap: wrap; align-items: center; }
html.js .filters { display: flex; } .filters label { white-space: nowrap; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(26em, 1fr)); gap: 1em; }
.facts section { border: 1px solid #d0d7de; border-radius: 6px; padding: .6em .9em; }
.facts h3 { margin: 0 0 .4em; font-size: 1em; } dl { display: grid; grid-template-columns: max-content 1fr; gap: .15em .8em; margin: 0; }
dt { color: #57606a; } dd { margin: 0; } ul.failures li { margin: .2em 0; } code { font-size: .95em; }
footer { margin-top: 2em; color: #57606a; font-size: .9em; }
"""

SCRIPT = """
document.documentElement.classList.add('js');
(function () {
  var boxes = document.querySelectorAll('.filters input[data-outcome]');
  var only = document.getElementById('only-gate');
  var search = document.getElementById('search');
  function apply() {
    var want = {};
    boxes.forEach(function (b) { want[b.dataset.outcome] = b.checked; });
    var text = (search.value || '').toLowerCase();
    document.querySelectorAll('tr.row').forEach(function (row) {
      var cells = row.querySelectorAll('td.cell');
      var show = false;
      cells.forEach(function (c) {
        if (want[c.dataset.outcome] && (!only.checked || c.classList.contains('gatefail'))) show = true;
      });
      if (text && row.dataset.probe.toLowerCase().indexOf(text) < 0) show = false;
      row.classList.toggle('hidden', !show);
    });
    document.querySelectorAll('tbody.feature').forEach(function (body) {
      var shown = body.querySelectorAll('tr.row:not(.hidden)').length;
      body.querySelector('.count').textContent = shown + '/' + body.querySelectorAll('tr.row').length;
    });
  }
  // A link can preset the filters: #outcomes=FAIL,XPASS&gate&probe=svm.npt
  var hash = {};
  location.hash.replace(/^#/, '').split('&').forEach(function (kv) {
    var i = kv.indexOf('=');
    if (kv) hash[decodeURIComponent(i < 0 ? kv : kv.slice(0, i))] = i < 0 ? '' : decodeURIComponent(kv.slice(i + 1));
  });
  if ('outcomes' in hash) {
    var wanted = hash.outcomes.toUpperCase().split(',');
    boxes.forEach(function (b) { b.checked = wanted.indexOf(b.dataset.outcome) >= 0; });
  }
  if ('gate' in hash) only.checked = true;
  if ('probe' in hash) search.value = hash.probe;
  boxes.forEach(function (b) { b.addEventListener('change', apply); });
  only.addEventListener('change', apply);
  search.addEventListener('input', apply);
  document.querySelectorAll('tr.group th').forEach(function (th) {
    th.addEventListener('click', function () { th.closest('tbody').classList.toggle('folded'); });
  });
  document.getElementById('fold-all').addEventListener('click', function () {
    document.querySelectorAll('tbody.feature').forEach(function (b) { b.classList.add('folded'); });
  });
  document.getElementById('unfold-all').addEventListener('click', function () {
    document.querySelectorAll('tbody.feature').forEach(function (b) { b.classList.remove('folded'); });
  });
  apply();
})();
"""


class Markup(str):
    """HTML this module wrote itself, from escaped parts: `e` passes it on as it is."""


def e(value: object) -> Markup:
    """The one way anything gets into the page: every `{...}` in this module
    is `e(...)` (tests/test_hostile_outputs.py checks the source). Text is
    escaped for an element or a quoted attribute, with control characters
    shown as \\xNN and lone surrogates as U+FFFD (reports/common.py); Markup,
    HTML this module built with `e` already, is kept."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(printable(value), quote=True))


def join(parts) -> Markup:
    return Markup("".join(e(p) for p in parts))


def render_runs(runs: list[RunRecord], title: str | None = None) -> str:
    cols = columns(runs)
    results = lookup(runs)
    index = {id(run): i for i, run in enumerate(runs)}
    holds = all(r.gate is not None and r.gate.holds for r in runs)
    names = ", ".join(dict.fromkeys(c.label for c in cols)) or "no runs"
    title = title or f"nvct: {names}"
    gate_class, gate_text = ("holds", "holds") if holds else ("fails", "FAILS")
    runs_s, cols_s = ("s" if len(runs) != 1 else ""), ("s" if len(cols) != 1 else "")
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No network: nothing but what is in this file, whatever a cell holds.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">",
        f"<title>{e(title)}</title>",
        "<style>" + CSS + "</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p><span id="gate" class="gate {e(gate_class)}">gate {e(gate_text)}</span> ',
        f"{e(len(runs))} run{e(runs_s)}, {e(len(cols))} level column{e(cols_s)}</p>",
    ]
    failures = [(run, f) for run in runs for f in (run.gate.failures if run.gate else [])]
    if failures:
        plural = "s" if len(failures) != 1 else ""
        out.append(f'<h2>What fails the gate</h2><details id="failing" open><summary>{e(len(failures))} '
                   f'result{e(plural)}</summary><ul class="failures" id="failures">')  # fmt: skip
        for run, f in failures:
            if f["probe"]:
                where = Markup(f"{e(run.label)} L{e(f['level'])} <code>{e(f['probe'])}</code>")
            else:
                where = e(run.label)
            out.append(f"<li>{e(where)}: {e(f['why'])}</li>")
        out.append("</ul></details>")

    def under(c) -> str:
        hv = c.info.hypervisor if c.info is not None else {}
        sig = c.info.facts.get("hv.signature", "") if c.info is not None else ""
        return f"L{c.level - 1} {hv.get('backend', '?')}" + (f", {sig}" if sig else "")

    head = join(Markup(f'<th scope="col">{e(c.title)}<br><small>{e(under(c))}</small></th>') for c in cols)
    # ---- the feature view
    out.append(f'<h2>Features</h2><table id="features"><thead><tr><th scope="col">feature</th>{e(head)}'
               "</tr></thead><tbody>")  # fmt: skip
    views = {id(run): feature_view(run) for run in runs}
    for name in dict.fromkeys(s.feature for run in runs for s in views[id(run)]):
        cells = []
        for c in cols:
            status = next((s for s in views[id(c.run)] if s.feature == name and s.level == c.level), None)
            if status is None and c.info is not None:
                status = from_facts(name, c.level, c.info.facts)
            if status is None:
                cells.append(Markup('<td class="v-none">-</td>'))
            else:
                cells.append(Markup(f'<td class="v-{e(STATE_CLASS[status.state])}">{e(status.text())}</td>'))
        out.append(f'<tr><th scope="row">{e(name)}</th>{e(join(cells))}</tr>')
    out.append("</tbody></table>")

    # ---- the probe matrix
    out.append("<h2>Probes</h2>")
    out.append('<div class="filters" id="filters"><span>show:</span>')
    for o in OUTCOMES:
        out.append(f'<label class="v-{e(o)}"><input type="checkbox" data-outcome="{e(o)}" checked> {e(o)}</label>')
    out.append('<label><input type="checkbox" id="only-gate"> only what fails the gate</label>')
    out.append('<input type="search" id="search" placeholder="probe id">')
    out.append(
        '<button type="button" id="fold-all">fold all</button><button type="button" id="unfold-all">unfold all</button>'
    )
    out.append("</div>")
    out.append(f'<table id="matrix"><thead><tr><th scope="col">probe</th>{e(head)}</tr></thead>')
    for feature, family, ids in groups(runs):
        label = feature if feature.lower() == family.lower() else f"{feature} ({family})"
        out.append(f'<tbody class="feature" data-feature="{e(feature)}">')
        out.append(f'<tr class="group"><th colspan="{e(len(cols) + 1)}">{e(label)} '
                   f'<span class="count">{e(len(ids))}</span></th></tr>')  # fmt: skip
        for pid in ids:
            description = ""
            cells = []
            for c in cols:
                r = results.get((index[id(c.run)], pid, c.level))
                entry = c.run.probe_info().get(pid)
                if entry and not description:
                    description = f"{entry.get('description', '')} [{entry.get('reference', '')}]"
                if r is None:
                    cells.append(Markup('<td class="cell v-none" data-outcome="none">-</td>'))
                    continue
                shown = outcome(c.run, r)
                bad = why(c.run, r)
                note = bad or (r.detail if shown != "PASS" else "")
                expected = expected_text(c.run, r)
                tip = " | ".join(t for t in (note, expected) if t)
                small = Markup(f"<small>{e(note[:200])}</small>") if note else ""
                cls = f"cell v-{shown}" + (" gatefail" if bad else "")
                cells.append(Markup(f'<td class="{e(cls)}" data-outcome="{e(shown)}" title="{e(tip)}">'
                                    f"{e(shown)}{e(small)}</td>"))  # fmt: skip
            out.append(f'<tr class="row" data-probe="{e(pid)}"><td class="probe" title="{e(description)}">{e(pid)}</td>'
                       f"{e(join(cells))}</tr>")  # fmt: skip
        out.append("</tbody>")
    out.append("</table>")

    # ---- the requirements the probes name, per level: PASS when every probe naming one passed there
    req_cols = [(c, requirement_verdicts(c.run.catalog, c.run.results).get(c.level, {})) for c in cols]
    if any(states for _, states in req_cols):
        out.append('<h2>Requirements</h2><table id="requirements"><thead><tr><th scope="col">requirements'
                   f"</th>{e(head)}</tr></thead><tbody>")  # fmt: skip
        for state in ("PASS", "PARTIAL", "SKIP", "FAIL"):
            cells = join(Markup(f"<td>{e(sum(v == state for v in states.values()))}</td>") for _, states in req_cols)
            out.append(f'<tr><th scope="row">{e(state)}</th>{e(cells)}</tr>')
        out.append(
            "</tbody></table><p><small>A requirement of the map (requirements/) passes at a level when "
            "every probe naming it passed there; PARTIAL: some passed, the others skipped.</small></p>"
        )
        for c, states in req_cols:
            failed = sorted(rid for rid, state in states.items() if state == "FAIL")
            if failed:
                items = join(Markup(f"<li><code>{e(rid)}</code></li>") for rid in failed)
                out.append(f'<details class="req-fail"><summary>{e(c.title)}: {e(len(failed))} requirements '
                           f"not met</summary><ul>{e(items)}</ul></details>")  # fmt: skip

    # ---- the facts of each level
    out.append('<h2>Stacks and levels</h2><div class="facts" id="facts">')
    for c in cols:
        info = c.info
        run = c.run
        out.append(f"<section><h3>{e(c.title)}</h3><dl>")
        rows = [("profile", f"{run.profile.get('name', '')} ({run.profile.get('path', '')})"),
                ("host", f"{run.host} ({run.environment.get('kernel', '')})"),
                ("run", f"{run.started} to {run.finished or '?'}, {run.status}, nvct {run.nvct_version}")]  # fmt: skip
        if info is not None:
            hv = info.hypervisor
            facts = info.facts
            settings = " ".join(f"{k}={v}" for k, v in hv.get("settings", {}).items() if v not in ("", None, [], ()))
            sig = facts.get("hv.signature", "") if facts.get("hv.present") == "1" else "none (no hypervisor bit)"
            rows += [
                (f"L{c.level - 1} hypervisor", f"{hv.get('backend', '?')} {hv.get('version', '')} {settings}"),
                ("CPU", f"{facts.get('cpu.vendor', '?')} {facts.get('cpu.brand', '')} (family {facts.get('cpu.family', '?')}, "
                        f"model {facts.get('cpu.model', '?')}, stepping {facts.get('cpu.stepping', '?')})"),
                (f"L{c.level - 1} nesting settings", nesting_settings(hv) or "not reported"),
                ("hypervisor signature", sig),
                ("exposed features", ", ".join(exposed(facts)) or "no SVM or VMX feature"),
                ("summary", describe_facts(facts)),
                ("probe kernel", f"build {info.kernel.get('build', '?')}, {info.boots} boot(s)"),
            ]  # fmt: skip
            if info.problems:
                rows.append(("problems", "; ".join(info.problems)))
        for key, value in rows:
            out.append(f"<dt>{e(key)}</dt><dd>{e(value)}</dd>")
        out.append("</dl>")
        if info is not None and info.facts:
            out.append(f"<details><summary>all {e(len(info.facts))} facts</summary><table>")
            out += [f"<tr><td><code>{e(k)}</code></td><td><code>{e(v)}</code></td></tr>" for k, v in info.facts.items()]
            out.append("</table></details>")
        out.append("</section>")
    out.append("</div>")
    records_s = "s" if len(runs) != 1 else ""
    out.append(f"<footer>nvct {e(__version__)}: generated from the run record{e(records_s)} alone "
               f"(schema nvct-run/1). Cells show the outcome under the gate; hover for details.</footer>")  # fmt: skip
    # The script and the digest are this module's own text; the digest's strings
    # are JSON with every '<' written \u003c, so no '</script>' can end it early.
    out.append("<script>" + SCRIPT + "</script>")
    out.append('<script type="application/json" id="nvct-summary">' + _summary(runs) + "</script>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _summary(runs: list[RunRecord]) -> str:
    """A small machine-readable digest, for a dashboard that scrapes the page."""
    data = [{"profile": r.label, "host": r.host, "gate": r.gate.to_dict() if r.gate else None} for r in runs]
    return json.dumps(data).replace("<", "\\u003c")


def render(record: RunRecord) -> str:
    return render_runs([record])
