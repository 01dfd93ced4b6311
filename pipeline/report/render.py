"""The report's figures -> one self-contained HTML page (inline CSS and SVG, no script, no
external resource, so it opens anywhere without network access).

Every figure printed in a table cell carries a ``data-figure`` attribute naming it (e.g.
``day:2024-11-01:rows``), so a machine (the browser test) can read the rendered page back.
Pure: a dict in, a string out.
"""
from __future__ import annotations

from html import escape
from typing import Any, Sequence

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2933;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d9e2ec}
.meta{color:#52606d} .cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{border:1px solid #d9e2ec;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:20px} table{border-collapse:collapse;margin:8px 0}
th,td{border-bottom:1px solid #e4e7eb;padding:3px 10px;text-align:right} th{background:#f5f7fa}
td.l,th.l{text-align:left} .bad{color:#b42318;font-weight:600} svg{display:block;margin:8px 0}
.legend span{display:inline-block;margin-right:14px} .sw{display:inline-block;width:10px;height:10px;margin-right:4px}
p.note{color:#52606d;max-width:860px}
"""

COLORS = ("#2f80ed", "#f2994a", "#eb5757", "#27ae60", "#9b51e0", "#56ccf2")


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{round(value):,}" if isinstance(value, float) else f"{value:,}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    sign, s = ("-" if seconds < 0 else ""), abs(seconds)
    if s < 120:
        return f"{sign}{s:.1f} s"
    if s < 7200:
        return f"{sign}{s / 60:.1f} min"
    if s < 172800:
        return f"{sign}{s / 3600:.1f} h"
    return f"{sign}{s / 86400:.1f} d"


def _cell(key: str, value: Any, text: str | None = None, css: str = "") -> str:
    """A table cell holding one machine-readable figure (``data-value`` is the exact value)."""
    raw = "" if value is None else (repr(value) if isinstance(value, float) else str(value))
    cls = f' class="{css}"' if css else ""
    return (f'<td{cls} data-figure="{escape(key)}" data-value="{escape(raw)}">'
            f"{escape(text if text is not None else _num(value))}</td>")


def _table(headers: Sequence[str], rows: Sequence[str], left: int = 1) -> str:
    head = "".join(f'<th class="l">{escape(h)}</th>' if i < left else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join(f"<tr>{r}</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def bar_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], *, title: str,
              stacked: bool = True, width: int = 900, height: int = 200) -> str:
    """Vertical bars, one group per label; series stacked (or side by side). Inline SVG."""
    if not labels:
        return '<p class="note">No data in the window.</p>'
    totals = [sum(s[1][i] or 0 for s in series) if stacked else max((s[1][i] or 0) for s in series)
              for i in range(len(labels))]
    top = max(totals) or 1
    left, bottom, plot_h = 50, 40, height - 50
    step = (width - left - 10) / len(labels)
    bar_w = max(step * 0.7, 1.0)
    parts = [f'<svg width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
             f'<line x1="{left}" y1="{10 + plot_h}" x2="{width - 10}" y2="{10 + plot_h}" stroke="#9aa5b1"/>',
             f'<text x="{left - 6}" y="16" font-size="11" text-anchor="end">{escape(_num(top))}</text>',
             f'<text x="{left - 6}" y="{10 + plot_h}" font-size="11" text-anchor="end">0</text>']
    label_every = max(1, len(labels) // 15)
    for i, label in enumerate(labels):
        x = left + i * step + (step - bar_w) / 2
        base = 10 + plot_h
        for k, (name, values) in enumerate(series):
            value = values[i] or 0
            h = plot_h * value / top
            if stacked:
                base -= h
                y, bx, bw = base, x, bar_w
            else:
                bw = bar_w / len(series)
                y, bx = 10 + plot_h - h, x + k * bw
            parts.append(f'<rect x="{bx:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                         f'fill="{COLORS[k % len(COLORS)]}"><title>{escape(label)} {escape(name)}: '
                         f'{escape(_num(values[i], 1))}</title></rect>')
        if i % label_every == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - 22}" font-size="10" '
                         f'text-anchor="middle">{escape(label[-5:])}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span><i class="sw" style="background:{COLORS[k % len(COLORS)]}"></i>{escape(name)}</span>'
                     for k, (name, _) in enumerate(series))
    return f'<div class="legend">{legend}</div>' + "".join(parts)


def hbar_chart(items: Sequence[tuple[str, float]], *, title: str, width: int = 900) -> str:
    """Horizontal bars (label, value), e.g. the event-name mix. Inline SVG."""
    if not items:
        return '<p class="note">No data in the window.</p>'
    top = max(v for _, v in items) or 1
    row_h, label_w = 18, 260
    height = row_h * len(items) + 10
    parts = [f'<svg width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for i, (label, value) in enumerate(items):
        y = 5 + i * row_h
        w = (width - label_w - 80) * value / top
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" font-size="11" text-anchor="end">{escape(label[:40])}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row_h - 5}" fill="{COLORS[0]}"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 12}" font-size="11">{escape(_num(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(figures: dict[str, Any], *, title: str = "Canvas Live Events: lake health") -> str:
    t, fresh = figures["totals"], figures["freshness"]
    window = figures["window"]
    per_day = figures["per_day"]
    dl = figures["dead_letters"]
    source = figures.get("source", {})

    cards = [
        ("rows", "rows", _num(t["rows"])), ("distinct_events", "distinct events", _num(t["distinct_events"])),
        ("duplicates", "duplicates in files", _num(t["duplicates"])),
        ("dead_letters", "dead letters", _num(t["dead_letters"])),
        ("freshness_p50", "freshness p50", _duration(fresh["p50_seconds"])),
        ("freshness_p99", "freshness p99", _duration(fresh["p99_seconds"])),
        ("files", "Parquet files", _num(t["files"])),
        ("mean_file_bytes", "mean file size", f"{_num(t['mean_file_bytes'])} B"),
    ]
    values = {"rows": t["rows"], "distinct_events": t["distinct_events"], "duplicates": t["duplicates"],
              "dead_letters": t["dead_letters"], "freshness_p50": fresh["p50_seconds"],
              "freshness_p99": fresh["p99_seconds"], "files": t["files"], "mean_file_bytes": t["mean_file_bytes"]}
    card_html = "".join(
        f'<div class="card" data-figure="total:{key}" data-value="{escape(repr(values[key]) if isinstance(values[key], float) else str(values[key]))}">'
        f"<b>{escape(text)}</b>{escape(label)}</div>"
        for key, label, text in cards)

    day_labels = [d["date"] for d in per_day]
    day_rows = [
        _cell(f"day:{d['date']}:date", d["date"], d["date"], "l")
        + _cell(f"day:{d['date']}:rows", d["rows"])
        + _cell(f"day:{d['date']}:distinct_events", d["distinct_events"])
        + _cell(f"day:{d['date']}:duplicates", d["duplicates"], css="bad" if d["duplicates"] else "")
        + _cell(f"day:{d['date']}:freshness_p50_seconds", d["freshness_p50_seconds"], _duration(d["freshness_p50_seconds"]))
        + _cell(f"day:{d['date']}:freshness_p99_seconds", d["freshness_p99_seconds"], _duration(d["freshness_p99_seconds"]))
        + _cell(f"day:{d['date']}:newest_event", d["newest_event"], d["newest_event"] or "–")
        + _cell(f"day:{d['date']}:files", d["files"])
        + _cell(f"day:{d['date']}:partitions", d["partitions"])
        + _cell(f"day:{d['date']}:mean_file_bytes", d["mean_file_bytes"])
        for d in per_day
    ]
    dl_rows = [
        _cell(f"dead_letters:{r['stage']}:{r['error_type']}:stage", r["stage"], r["stage"], "l")
        + _cell(f"dead_letters:{r['stage']}:{r['error_type']}:error_type", r["error_type"], r["error_type"], "l")
        + _cell(f"dead_letters:{r['stage']}:{r['error_type']}", r["count"])
        for r in dl["by_reason"]
    ]
    dl_day_rows = [
        _cell(f"dead_letters_day:{r['date']}:{r['stage']}:{r['error_type']}:date", r["date"], r["date"], "l")
        + f'<td class="l">{escape(r["stage"])}</td><td class="l">{escape(r["error_type"])}</td>'
        + _cell(f"dead_letters_day:{r['date']}:{r['stage']}:{r['error_type']}", r["count"])
        for r in dl["by_day_and_reason"]
    ]
    name_rows = [
        _cell(f"event_name:{e['event_name']}:name", e["event_name"], e["event_name"], "l")
        + _cell(f"event_name:{e['event_name']}:rows", e["rows"])
        + _cell(f"event_name:{e['event_name']}:distinct_events", e["distinct_events"])
        for e in figures["event_names"]
    ]
    gap = figures["gaps"]
    gap_rows = [
        _cell(f"gap:{g['date']}:{g['hour']:02d}:date", g["date"], g["date"], "l")
        + _cell(f"gap:{g['date']}:{g['hour']:02d}:hour", g["hour"], f"{g['hour']:02d}:00")
        + _cell(f"gap:{g['date']}:{g['hour']:02d}:events", g["events"], css="bad")
        + _cell(f"gap:{g['date']}:{g['hour']:02d}:baseline", g["baseline"], _num(g["baseline"], 1))
        for g in gap["hours"]
    ]
    part_rows = [
        _cell(f"partition:{p['event_date']}/{p['event_name']}:date", p["event_date"], p["event_date"], "l")
        + _cell(f"partition:{p['event_date']}/{p['event_name']}:name", p["event_name"], p["event_name"], "l")
        + _cell(f"partition:{p['event_date']}/{p['event_name']}:files", p["files"])
        + _cell(f"partition:{p['event_date']}/{p['event_name']}:rows", p["rows"])
        + _cell(f"partition:{p['event_date']}/{p['event_name']}:mean_file_bytes", p["mean_file_bytes"])
        for p in figures["partitions"]
    ]
    definition = gap["definition"]
    window_text = (f"{window['first_day']} to {window['last_day']}" if window["first_day"] else "no events")
    dlw = figures["dead_letter_window"]
    dl_window_text = f"{dlw['first_day']} to {dlw['last_day']}" if dlw["first_day"] else "none"

    sections = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">Generated <span data-figure="generated_at" data-value="{escape(figures["generated_at"])}">'
        f'{escape(figures["generated_at"])}</span> from <code>{escape(source.get("output", ""))}</code>'
        f' and <code>{escape(source.get("dead_letter_output") or "(no dead-letter output given)")}</code>. '
        f"Events: {escape(window_text)} (UTC, by event date); dead letters: {escape(dl_window_text)} (by failure date). "
        f'Newest event <span data-figure="newest_event" data-value="{escape(fresh["newest_event"] or "")}">'
        f'{escape(fresh["newest_event"] or "–")}</span>, '
        f'{escape(_duration(fresh["newest_event_age_seconds"]))} before this report.</p>',
        f'<div class="cards">{card_html}</div>',
        "<h2>Rows per day</h2>",
        bar_chart(day_labels, [("distinct events", [d["distinct_events"] for d in per_day]),
                               ("duplicates still in the files", [d["duplicates"] for d in per_day])],
                  title="rows per day"),
        _table(["day", "rows", "distinct events", "duplicates", "freshness p50", "freshness p99", "newest event",
                "files", "partitions", "mean file bytes"], day_rows),
        "<h2>Freshness (received_at − event_time)</h2>",
        bar_chart(day_labels, [("p50 seconds", [d["freshness_p50_seconds"] for d in per_day]),
                               ("p99 seconds", [d["freshness_p99_seconds"] for d in per_day])],
                  title="freshness per day, seconds", stacked=False),
        "<h2>Dead letters</h2>",
        bar_chart([d["date"] for d in dl["per_day"]], [("dead letters", [d["count"] for d in dl["per_day"]])],
                  title="dead letters per day"),
        _table(["stage", "reason", "records"], dl_rows, left=2),
        _table(["day", "stage", "reason", "records"], dl_day_rows, left=3),
        "<h2>Event-name mix</h2>",
        hbar_chart([(e["event_name"], e["rows"]) for e in figures["event_names"]], title="rows per event name"),
        _table(["event name", "rows", "distinct events"], name_rows),
        "<h2>Gaps</h2>",
        f'<p class="note">An hour is a gap when it holds fewer than {definition["ratio"]:.0%} of the median of '
        f"the same UTC hour on the other days of the window (at least {definition['min_other_days']} other days, "
        f"median at least {definition['min_baseline']} distinct events). Hours after the newest event are not judged.</p>",
        _table(["day", "hour (UTC)", "distinct events", "baseline (median)"], gap_rows, left=1)
        if gap_rows else '<p data-figure="gaps:none" data-value="0">No gaps.</p>',
        "<h2>Files per partition</h2>",
        '<p class="note">Many small files per partition mean compaction is not keeping up.</p>',
        _table(["event date", "event name", "files", "rows", "mean file bytes"], part_rows, left=2),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            + "\n".join(sections) + "</body></html>\n")
