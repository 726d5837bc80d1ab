"""Write and read lab findings in the store's ``findings`` table."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sgdlab.lab.findings import Finding
from sgdlab.store import Store


def write_findings(store: Store, findings: list[Finding], run_id: str = "") -> None:
    """Replace the stored findings of each study in ``findings`` with these (one transaction).

    ``run_id`` labels the lab session that produced them.
    """
    now = datetime.now(UTC).replace(tzinfo=None)
    studies = sorted({f.study for f in findings})
    store.con.begin()
    try:
        for s in studies:
            store.con.execute("DELETE FROM findings WHERE study = ?", [s])
        rows = []
        for f in findings:
            d = f.to_dict()
            rows.append([
                run_id, d["study"], d["claim"], d["quantity"], d["measured"], d["ci_low"],
                d["ci_high"], d["predicted"], d["tolerance"], d["verdict"], d["figure"],
                json.dumps(d["details"]), now,
            ])
        if rows:
            store.con.executemany(
                "INSERT INTO findings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
        store.con.commit()
    except BaseException:
        store.con.rollback()
        raise


def read_findings(store: Store, study: str | None = None) -> list[Finding]:
    """The stored findings (of one study, or all), in insertion order."""
    sql = """SELECT study, claim, quantity, measured, ci_low, ci_high, predicted, tolerance,
             verdict, figure, details_json FROM findings"""
    args = []
    if study:
        sql += " WHERE study = ?"
        args.append(study)
    out = []
    for row in store.con.execute(sql, args).fetchall():
        (s, claim, q, m, lo, hi, p, tol, v, fig, det) = row
        out.append(Finding.from_dict({
            "study": s, "claim": claim, "quantity": q, "measured": m, "ci_low": lo,
            "ci_high": hi, "predicted": p, "tolerance": tol, "verdict": v, "figure": fig or "",
            "details": json.loads(det or "{}"),
        }))
    return out
