#!/usr/bin/python3
"""The numbers in a `moe report` page are the run directory's numbers.

usage: report_numbers.py REPORT.html RUN_DIR

Extracts the JSON data block (<script type="application/json" id="moe-data">)
from the page and checks, with exact equality of the parsed values (same type,
same float bits), that data.train, data.eval and data.alerts are the
metrics.jsonl lines of kind "train", "eval" and "alert" in file order, and that
data.routing, data.model_info, data.results and data.config are routing.json,
model_info.json, results.json and config.json; and that each is absent when
its file (or its kind of line) is. Exit status 1 with the first difference.
"""
import json
import math
import os
import re
import sys

FILES = {"routing": "routing.json", "model_info": "model_info.json",
         "results": "results.json", "config": "config.json"}
KINDS = {"train": "train", "eval": "eval", "alerts": "alert"}


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def data_block(html_path):
    html = open(html_path, encoding="utf-8").read()
    blocks = re.findall(r'<script type="application/json" id="moe-data">(.*?)</script>', html, re.S)
    if len(blocks) != 1:
        fail(f"{html_path}: {len(blocks)} data blocks, want 1")
    return json.loads(blocks[0])


def metrics_lines(path):
    """The lines by kind, as the report reads them: blank lines skipped, and a
    last line without its newline skipped when it does not parse (the trainer
    is mid-write)."""
    text = open(path, encoding="utf-8").read()
    lines = text.split("\n")
    out = {k: [] for k in KINDS}
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:
                continue
            fail(f"{path} line {i + 1} does not parse, yet the report was written")
        for key, kind in KINDS.items():
            if obj.get("kind") == kind:
                out[key].append(obj)
    return out


class Counter:
    numbers = 0


def same(a, b, where):
    """Exact equality, reporting where the first difference is."""
    if type(a) is not type(b):
        fail(f"{where}: {a!r} ({type(a).__name__}) in the report, "
             f"{b!r} ({type(b).__name__}) in the file")
    if isinstance(a, dict):
        if a.keys() != b.keys():
            fail(f"{where}: keys differ: report {sorted(a)} vs file {sorted(b)}")
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        if len(a) != len(b):
            fail(f"{where}: {len(a)} items in the report, {len(b)} in the file")
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        Counter.numbers += 1
        if not (a == b and math.copysign(1, a) == math.copysign(1, b)):
            fail(f"{where}: {a!r} in the report, {b!r} in the file")
    else:
        if isinstance(a, int) and not isinstance(a, bool):
            Counter.numbers += 1
        if a != b:
            fail(f"{where}: {a!r} in the report, {b!r} in the file")


def main():
    if len(sys.argv) != 3:
        fail(__doc__)
    html_path, run_dir = sys.argv[1], sys.argv[2]
    data = data_block(html_path)
    lines = metrics_lines(os.path.join(run_dir, "metrics.jsonl"))
    for key, kind in KINDS.items():
        if lines[key]:
            if key not in data:
                fail(f"data.{key} is missing, metrics.jsonl has {len(lines[key])} {kind} lines")
            same(data[key], lines[key], f"data.{key}")
        elif key in data:
            fail(f"data.{key} is present, metrics.jsonl has no {kind} line")
    for key, name in FILES.items():
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            if key not in data:
                fail(f"data.{key} is missing, {name} exists")
            same(data[key], json.load(open(path, encoding="utf-8")), f"data.{key}")
        elif key in data:
            fail(f"data.{key} is present, {name} does not exist")
    path = os.path.join(run_dir, "analysis.jsonl")
    if os.path.exists(path):
        want = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
        if "analysis" not in data:
            fail("data.analysis is missing, analysis.jsonl exists")
        same(data["analysis"], want, "data.analysis")
    elif "analysis" in data:
        fail("data.analysis is present, analysis.jsonl does not exist")
    counts = ", ".join(f"{len(lines[k])} {k}" for k in KINDS)
    present = ", ".join(k for k in FILES if k in data) or "no other files"
    print(f"report numbers equal the run directory's: {counts} lines; {present}; "
          f"{Counter.numbers} numbers")


if __name__ == "__main__":
    main()
