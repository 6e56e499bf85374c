"""status: per source, what is there and whether its prepared outputs are current (a table, or JSON)."""

from __future__ import annotations

import argparse
import json
import sys

from .common import add_endpoint_flags, add_selection, remote_options


def add_parsers(sub) -> None:
    p = sub.add_parser("status", help="per source: present / missing / incomplete / modified / stale, files, size, "
                                      "revision, and whether its prepared outputs are current")
    add_selection(p)
    p.add_argument("--json", action="store_true", help="one JSON list on stdout instead of the table")
    p.add_argument("--remote", action="store_true", help="also ask the Hub whether the locked commit is still the newest "
                   "(stale), and show each endpoint's reachability and resolved commit")
    add_endpoint_flags(p)
    p.set_defaults(run=run_status)


def run_status(args: argparse.Namespace, layout, catalog, sources) -> int:
    from ..pipeline import source_status

    rows = source_status(layout, sources, remote_options(args) if args.remote else None)
    outputs = [o for row in rows for o in row["outputs"]]
    well = all(r["state"] == "present" for r in rows) and all(o["state"] in ("current", "unrecorded")
                                                               for o in outputs)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0 if well else 1
    _print_table(rows)
    if not well:
        missing = sum(r["state"] != "present" for r in rows)
        bad = sum(o["state"] not in ("current", "unrecorded") for o in outputs)
        print(f"status: not all is well: {missing} source(s) missing, incomplete, modified or behind the Hub; "
              f"{bad} prepared output(s) stale or unreadable. `persian-data fetch` brings the sources, "
              "`persian-data prepare` remakes the outputs", file=sys.stderr)
    return 0 if well else 1


def _print_table(rows: list[dict]) -> None:
    from ..progress import human_bytes

    for row in rows:
        rev = (row["revision"] or "-")[:12]
        print(f"{row['source']:<12} {row['state']:<10} {row['files']:>6} files {human_bytes(row['bytes']):>10}  "
              f"{rev}  {row['folder']}")
        for url, answer in row.get("endpoints", {}).items():
            print(f"{'':<12} endpoint {url}: {answer[:12] if len(answer) == 40 else answer}")
        for out in row["outputs"]:
            why = {"stale": f": made from {', '.join(out['changed'])}, which changed since",
                   "unrecorded": ": made by an older version that did not record its inputs",
                   "unreadable": f": {out.get('problem')}"}.get(out["state"], "")
            print(f"{'':<12} {out['state']:<10} {out['path']} ({out['what']}){why}")
