"""The analysis tables: ``measurements`` (instruments applied to a stored run afterwards)
and ``findings`` (the lab's verdicts)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sgdlab.store.connection import StoreBase, now

__all__ = ["AnalysisTables"]


class AnalysisTables(StoreBase):
    """Reads and writes of measurements and findings (see :mod:`sgdlab.store`)."""

    def add_measurements(
        self, run_id: str, rows: Iterable[tuple[int, str, float, dict[str, Any] | None]]
    ) -> None:
        """Add ``(chain, name, value, details)`` measurements of a run, in one transaction.

        A measurement of the same (chain, name) replaces the earlier one."""
        rid = self.resolve(run_id)
        rows = list(rows)
        created = now()
        with self._transaction() as con:
            for chain, name, value, details in rows:
                con.execute(
                    "DELETE FROM measurements WHERE run_id = ? AND chain = ? AND name = ?",
                    [rid, chain, name],
                )
                con.execute(
                    "INSERT INTO measurements VALUES (?, ?, ?, ?, ?, ?)",
                    [rid, chain, name, float(value), json.dumps(details or {}, default=str),
                     created],
                )

    def measurements(self, run_id: str) -> list[dict[str, Any]]:
        """Measurements of a run (``chain``, ``name``, ``value``, ``details``), by chain, name."""
        _, rows = self._run_query(
            run_id, "SELECT chain, name, value, details_json FROM measurements "
            "WHERE run_id = ? ORDER BY chain, name",
        )  # fmt: skip
        return [
            {"chain": c, "name": n, "value": v, "details": json.loads(d or "{}")}
            for c, n, v, d in rows
        ]

    # ------------------------------------------------------------------ findings
    _FINDING_COLUMNS = (
        "study", "claim", "quantity", "measured", "ci_low", "ci_high", "predicted",
        "tolerance", "verdict", "figure", "kind",
    )  # fmt: skip

    def write_findings(self, findings: Iterable[dict[str, Any]], session: str = "") -> None:
        """Replace the stored findings of each study present in ``findings`` (dicts with the
        table's columns and ``details``) with these, in one transaction; ``session`` labels
        the lab session that produced them."""
        findings = list(findings)
        created = now()
        cols = ", ".join(self._FINDING_COLUMNS)
        rows = [
            [session, *(f.get(c) for c in self._FINDING_COLUMNS),
             json.dumps(f.get("details", {}), default=str), created]
            for f in findings
        ]  # fmt: skip
        with self._transaction() as con:
            for study in sorted({f["study"] for f in findings}):
                con.execute("DELETE FROM findings WHERE study = ?", [study])
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                con.executemany(
                    f"INSERT INTO findings (run_id, {cols}, details_json, created_at) "
                    f"VALUES ({marks})",
                    rows,
                )

    def findings(self, study: str | None = None) -> list[dict[str, Any]]:
        """The stored findings (of one study, or all), in insertion order, as dicts."""
        with self._read() as con:
            present = {
                r[0] for r in con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE table_name = 'findings'"
                ).fetchall()
            }  # fmt: skip
            cols = ", ".join(c if c in present else f"NULL AS {c}" for c in self._FINDING_COLUMNS)
            sql = f"SELECT {cols}, details_json FROM findings"
            args: list[Any] = []
            if study:
                sql += " WHERE study = ?"
                args.append(study)
            found = con.execute(sql, args).fetchall()
        out = []
        for row in found:
            d = dict(zip(self._FINDING_COLUMNS, row[:-1], strict=True))
            d["figure"] = d["figure"] or ""
            d["details"] = json.loads(row[-1] or "{}")
            out.append(d)
        return out
