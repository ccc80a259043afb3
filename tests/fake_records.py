"""Records as the harness writes them, built by hand for report and driver tests (light:
numpy and common only, so a stand-in contender process can import it quickly)."""

from __future__ import annotations

import numpy as np

from common.records import SCHEMA, append_record
from common.specs import load_preset


def record(backend, campaign, rates, *, fingerprint="fp-alpha", threads=2, stamp="2026-12-01T10:00:00+00:00",
           status="ok", preset="quick-lstm", mode=None, track=None, peak=None, own=None):
    """A record as the harness writes it: one warm-up epoch, then one epoch per round
    (`rates` a list, rounds 1, 2, ...; or a dict by round number)."""
    spec, meta = load_preset(preset)
    epochs = [{"epoch": 1, "round": 0, "tokens": 9000, "seconds": 1.0, "tok_s": 9000.0, "train_ppl": 20.0}]
    numbered = rates.items() if isinstance(rates, dict) else enumerate(rates, 1)
    rates = [rate for _, rate in sorted(numbered)] if isinstance(rates, dict) else rates
    for k, (r, rate) in enumerate(sorted(numbered), 1):
        epochs.append({"epoch": k + 1, "round": r, "tokens": 9000, "seconds": 9000 / rate, "tok_s": rate,
                       "train_ppl": 17.0})
    mode = mode or {"pytorch": "eager", "mxnet": "hybridized", "jax": "wavefront"}[backend]
    return {
        "schema": SCHEMA, "run_id": f"{campaign}-{backend}-{mode}", "timestamp": stamp, "status": status,
        "error": None, "backend": backend, "mode": mode, "mode_default": True, "track": track or "tuned",
        "device": {"kind": "cpu", "index": 0, "name": "cpu"}, "preset": preset, "threads": threads,
        "spec": spec.to_dict(), "book": meta, "epochs": epochs, "samples": {},
        "campaign": {"id": campaign, "rounds": len(rates), "gated": True,
                     "contender": backend + (f"/{track}" if track else "")},
        "summary": {"epochs_done": len(epochs), "final_train_ppl": 17.0, "final_val_ppl": None,
                    "train_flops_per_token": 1e6, "peak_flops": 5e10 * threads if peak is None else peak,
                    "peak_flops_own": own,
                    "tok_s_median": float(np.median(rates))},
        "env": {"hostname": "vm", "cpu_model": "AMD EPYC", "git_commit": "abc",
                "git": {"commit": "abc", "dirty": False},
                "fingerprint": {"id": fingerprint, "cores": 2}, "framework": {"version": "1", "threads": threads}},
    }


def write(folder, *records):
    for r in records:
        append_record(folder / f"{r['backend']}.jsonl", r)
    return folder
