"""``facelite models --pick`` / ``FaceDetector.for_budget``: the shipped configurations timed here,
the most accurate within a budget, and the per-machine cache."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from facelite import FaceDetector, budget, data_path
from facelite.cli import main
from facelite.models import MODEL_NAMES, PRECISIONS, file_sha256, shipped_path

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "RESULTS.md"


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory):
    """One real measurement of the 8 configurations (a few seconds), in a private cache folder;
    ``(pick --json output, exit code, cache folder)``. Later calls in the module read the cache."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACELITE_CACHE", str(cache))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = main(["models", "--pick", "--budget-ms", "1e9", "--json"])
        yield json.loads(out.getvalue()), rc, cache


@pytest.fixture
def same_cache(measured, monkeypatch):
    monkeypatch.setenv("FACELITE_CACHE", str(measured[2]))
    return measured[2]


def test_ap_table_covers_the_shipped_files_with_the_numbers_of_results_md():
    table = budget.ap_table()
    text = RESULTS.read_text(encoding="utf-8")
    for name in MODEL_NAMES:
        for precision in PRECISIONS:
            path = shipped_path(name, precision)
            if not path.is_file():
                continue
            digest = file_sha256(path)
            assert digest in table, f"{path.name} (re-exported?) is not in {budget.AP_TABLE}: update its AP there"
            row_precision = "static-int8" if precision == "int8" else precision
            for size in budget.INPUT_SIZES:
                ap = table[digest][str(size)]
                row = f"| {name} | {size} | {row_precision} | {ap['easy']:.3f} | {ap['medium']:.3f} | {ap['hard']:.3f} |"
                assert row in text, f"Table 4 of RESULTS.md has no row {row}"


def test_huge_budget_picks_the_most_accurate_configuration(measured):
    result, rc, _ = measured
    assert rc == 0 and not result["cached"]
    rows = result["rows"]
    assert len(rows) == 8 and {(r["model"], r["precision"], r["input_size"]) for r in rows} == {
        (m, p, s) for m in MODEL_NAMES for p in PRECISIONS for s in (320, 640)}
    assert all(0 < r["median_ms"] <= r["p90_ms"] and r["samples"] >= 5 for r in rows)
    best = max(rows, key=lambda r: r["ap"]["medium"])
    assert (best["model"], best["precision"], best["input_size"]) == ("mobilenetv2-1.0", "float32", 640)
    assert result["chosen"] == best == rows[0]
    # real timings: α 1.0 float32 takes several times longer at 640 than at 320
    t = {(r["model"], r["precision"], r["input_size"]): r["median_ms"] for r in rows}
    assert t["mobilenetv2-1.0", "float32", 640] > 2 * t["mobilenetv2-1.0", "float32", 320]


def test_tiny_budget_fits_nothing_and_names_the_fastest(same_cache, monkeypatch, capsys):
    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again instead of reading the cache")

    monkeypatch.setattr(budget, "measure", no_measuring)
    assert main(["models", "--pick", "--budget-ms", "0.01"]) == 1
    out = capsys.readouterr().out
    assert "cached measurement" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("mobilenetv2")]
    assert len(rows) == 8 and all(r[-2:] == ["over", "budget"] for r in rows)
    fastest = min(rows, key=lambda r: float(r[3]))
    m = re.search(r"no configuration fits 0\.01 ms \(median\); the fastest is (\S+) (\S+) @(\d+) at ([\d.]+) ms", out)
    assert m is not None, out
    assert list(m.groups()[:3]) == [fastest[0], fastest[1], fastest[2][1:]]
    with pytest.raises(ValueError, match=rf"no shipped configuration .* the fastest is {fastest[0]} {fastest[1]}"):
        FaceDetector.for_budget(0.01)


def test_second_call_reads_the_cache_and_for_budget_detects(same_cache, monkeypatch):
    calls = []
    real = budget.measure

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(budget, "measure", counting)
    first = budget.pick(1e9)
    assert first.cached and calls == []
    detector = FaceDetector.for_budget(1e9, score_threshold=0.6)
    assert calls == []
    assert (detector.name, detector.precision, detector.input_size) == ("mobilenetv2-1.0", "float32", 640)
    assert detector.score_threshold == 0.6
    faces = detector.detect(data_path("astronaut.jpg"))
    assert len(faces) == 1 and faces[0].score > 0.9
    # other settings are another cache entry: measured once, then cached
    budget.pick(1e9, input_sizes=(320,), threads=1, min_samples=2, max_samples=2, warmup=1)
    assert len(calls) == 1 and [c[2] for c in calls[0]] == [320] * 4
    again = budget.pick(5.0, input_sizes=(320,), threads=1, min_samples=2, max_samples=2, warmup=1)
    assert again.cached and len(calls) == 1 and again.threads == 1


def test_pick_refuses_bad_arguments(same_cache, capsys):
    with pytest.raises(ValueError, match="budget_ms must be > 0"):
        budget.pick(0)
    with pytest.raises(ValueError, match="no AP"):
        budget.pick(10, input_sizes=(480,))
    assert main(["models", "--pick"]) == 1
    assert "--pick needs --budget-ms" in capsys.readouterr().err
