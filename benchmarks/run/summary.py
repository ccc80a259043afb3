"""Plain-text summaries printed at the end of `run` and by `list`."""

from __future__ import annotations

from backends import BACKENDS, load_backend
from common.errors import BackendUnavailable


def _fmt(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def describe_run(record: dict) -> str:
    s, dev = record["summary"], record["device"]
    where = f"{dev['kind']}{'' if dev['kind'] == 'cpu' else ':' + str(dev['index'])} ({dev['name']})"
    rows = [
        ("run", f"{record['backend']} / {record['mode']}"
                + (f" ({record['track']} track)" if record.get("track") else "")
                + f" on {where}, {record['threads']} threads"),
        ("preset", f"{record['preset']}  status: {record['status']}"
                   + (f" ({record['error']})" if record["error"] else "")),
        ("epochs", f"{s['epochs_done']} of {record['spec']['train']['epochs']}"),
        ("train perplexity", _fmt(s["final_train_ppl"])),
        ("valid perplexity", _fmt(s["final_val_ppl"])),
        ("test perplexity", _fmt(s.get("test_ppl"))),
        ("tokens/sec", f"{_fmt(s['tok_s_median'], ',.0f')} median of later epochs "
                       f"(min {_fmt(s['tok_s_min'], ',.0f')}, max {_fmt(s['tok_s_max'], ',.0f')})"),
        ("warm-up", f"{_fmt(s['warmup_s'], '.2f')} s (first epoch, incl. compile)"),
        ("training time", f"{_fmt(s['train_s'], '.1f')} s (wall {_fmt(s['wall_s'], '.1f')} s)"),
        ("memory", _memory(s)),
    ]
    if s.get("utilisation") is not None:
        share = s["utilisation"]
        what = f"{100 * share:.0f}%" if share <= 1 else "over 100%: a measurement error, not utilisation"
        rows.append(("utilisation", f"{s['achieved_flops'] / 1e9:,.1f} GFLOP/s of a "
                                    f"{s['peak_flops'] / 1e9:,.1f} GFLOP/s matmul peak ({what})"))
    if s.get("target_ppl") is not None:
        rows.append(("time to target", f"{_fmt(s['time_to_target_s'], '.1f')} s to ppl <= {s['target_ppl']}"))
    rows += [(f"sample '{k}'", v) for k, v in record["samples"].items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:>{width}}  {v}" for k, v in rows)


def backend_listing(name: str) -> dict:
    """One backend as data: version, devices, threads, and per mode its track, its
    description and whether it is the default (or why the backend is unavailable)."""
    try:
        b = load_backend(name)
    except BackendUnavailable as exc:
        return {"name": name, "available": False, "reason": str(exc)}
    env = b.environment()
    modes = [{"mode": m, "track": b.track_of(m), "description": b.describe_mode(m), "default": m == b.default_mode}
             for m in b.modes]
    return {"name": name, "available": True, "version": env.get("version"), "devices": b.devices(),
            "threads": env.get("threads"), "default_mode": b.default_mode, "tracks": b.track_modes(),
            "modes": modes}


def describe_environment(listings: list[dict] | None = None) -> str:
    """Backends importable in this Python, with their devices and their modes (track,
    description)."""
    lines = ["backends (in this Python environment):"]
    for item in listings if listings is not None else [backend_listing(n) for n in BACKENDS]:
        name = item["name"]
        if not item["available"]:
            lines.append(f"  {name:8s} unavailable: {item['reason']}")
            continue
        lines.append(f"  {name:8s} {item['version'] or '?'}; devices: {', '.join(item['devices'])}; "
                     f"threads {item['threads']}; modes:")
        for m in item["modes"]:
            default = ", default" if m["default"] else ""
            lines.append(f"    {m['mode']:12s} [{m['track']}{default}] {m['description']}")
    return "\n".join(lines)


def _memory(s: dict) -> str:
    """Training's peak resident memory and what training added (common.rss), else the
    process peak (records written before the watermark)."""
    if s.get("train_peak_rss_mb") is None:
        return f"peak {_fmt(s.get('peak_rss_mb'), ',.0f')} MiB (the process's)"
    scope = "in training" if s.get("peak_scope") == "training" else "of the process (no per-training peak here)"
    start = s.get("rss_start_mb")
    added = f", +{s['train_peak_rss_mb'] - start:,.0f} MiB over the {start:,.0f} MiB at its start" if start else ""
    return f"peak {s['train_peak_rss_mb']:,.0f} MiB {scope}{added}"
