"""The evaluation's outputs: a console table (rich) and a self-contained HTML report."""

from __future__ import annotations

from html import escape

from rich.console import Console
from rich.table import Table

from sigmachat.eval.runner import EvalReport, TurnResult


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _mark(ok: bool) -> str:
    return "[green]pass[/]" if ok else "[red]FAIL[/]"


def turn_row(r: TurnResult, engines: tuple[str, ...]) -> list[str]:
    cells = [r.key, r.question if len(r.question) <= 48 else r.question[:47] + "…"]
    missing = []
    for e in engines:
        t = r.engines.get(e)
        cells.append(_mark(t.passed) if t else "–")
        if t and t.missing:
            missing.append(f"{e}: " + "; ".join(t.missing))
    same = r.same_tools
    cells.append("–" if same is None else "[green]yes[/]" if same else "[red]no[/]")
    cells.append(" / ".join(_ms(r.engines[e].ttfb_ms) if e in r.engines else "–" for e in engines))
    cells.append(" / ".join(_ms(r.engines[e].total_ms) if e in r.engines else "–" for e in engines))
    cells.append("\n".join(missing))
    return cells


def print_report(report: EvalReport, console: Console) -> None:
    engines = report.engines
    table = Table(
        title=f"sigmachat eval: {len(report.results)} questions, model {report.model}",
        show_lines=False,
    )
    table.add_column("id", no_wrap=True)
    table.add_column("question")
    for e in engines:
        table.add_column(e)
    table.add_column("same tools")
    table.add_column("TTFB ms " + "/".join(engines), justify="right")
    table.add_column("total ms " + "/".join(engines), justify="right")
    table.add_column("missing")
    for r in report.results:
        table.add_row(*turn_row(r, engines))
    console.print(table)
    print_summary(report, console)


def print_summary(report: EvalReport, console: Console) -> None:
    n = len(report.results)
    for e in report.engines:
        ttfb, total = report.latency(e, "ttfb_ms"), report.latency(e, "total_ms")
        console.print(
            f"[bold]{e}[/]: {report.passed(e)}/{n} passed ({report.pass_rate(e):.1f}%), "
            f"TTFB p50 {_ms(ttfb['p50'])} ms p95 {_ms(ttfb['p95'])} ms, completion p50 {_ms(total['p50'])} ms "
            f"p95 {_ms(total['p95'])} ms"
        )
    agreement = report.agreement()
    if agreement is not None:
        same = sum(1 for r in report.results if r.same_tools)
        console.print(f"[bold]tool-sequence agreement[/]: {same}/{n} ({agreement:.1f}%) same tools in the same order")


_CSS = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left}th{background:#f4f4f4}
.pass{color:#17803d;font-weight:600}.fail{color:#b42318;font-weight:600}pre{white-space:pre-wrap;margin:0;font-size:12px}
details summary{cursor:pointer;color:#555}.num{text-align:right;white-space:nowrap}"""


def html_report(report: EvalReport) -> str:
    engines = report.engines
    n = len(report.results)
    summary = "".join(
        f"<li><b>{escape(e)}</b>: {report.passed(e)}/{n} passed ({report.pass_rate(e):.1f}%); TTFB p50 "
        f"{_ms(report.latency(e, 'ttfb_ms')['p50'])} ms, p95 {_ms(report.latency(e, 'ttfb_ms')['p95'])} ms; "
        "completion p50 "
        f"{_ms(report.latency(e, 'total_ms')['p50'])} ms, p95 {_ms(report.latency(e, 'total_ms')['p95'])} ms</li>"
        for e in engines
    )
    agreement = report.agreement()
    if agreement is not None:
        summary += f"<li><b>tool-sequence agreement</b>: {agreement:.1f}%</li>"
    head = "".join(f"<th>{escape(e)}</th>" for e in engines)
    rows = []
    for r in report.results:
        cells = [f"<td>{escape(r.key)}</td><td>{escape(r.question)}<br><small>{escape(r.email)}</small></td>"]
        for e in engines:
            t = r.engines.get(e)
            if t is None:
                cells.append("<td>–</td>")
                continue
            verdict = '<span class="pass">pass</span>' if t.passed else '<span class="fail">fail</span>'
            missing = "".join(f"<li>{escape(m)}</li>" for m in t.missing)
            cells.append(
                f"<td>{verdict}{f'<ul>{missing}</ul>' if missing else ''}<details><summary>answer · tools: "
                f"{escape(', '.join(t.tools) or 'none')}</summary><pre>{escape(t.text)}</pre></details></td>"
            )
        same = r.same_tools
        cells.append(f"<td>{'–' if same is None else 'yes' if same else '<span class=fail>no</span>'}</td>")
        cells.append(
            "<td class=num>" + " / ".join(_ms(r.engines[e].ttfb_ms) for e in engines if e in r.engines) + "</td>"
        )
        cells.append(
            "<td class=num>" + " / ".join(_ms(r.engines[e].total_ms) for e in engines if e in r.engines) + "</td>"
        )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>sigmachat eval</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>sigmachat eval</h1><p>Model <code>{escape(report.model)}</code>, {n} questions.</p><ul>{summary}</ul>"
        f"<table><tr><th>id</th><th>question</th>{head}<th>same tools</th><th>TTFB ms</th><th>total ms</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
