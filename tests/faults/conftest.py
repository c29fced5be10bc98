"""The fault-injection suite prints its books at the end of the run (also under `pytest -q`)."""
from __future__ import annotations


def pytest_terminal_summary(terminalreporter) -> None:
    from ledger import CASES

    if not CASES:
        return
    tr = terminalreporter
    tr.section("fault injection: every episode accounted for")
    tr.write_line(f"{'case':<56} {'faults':>6} {'episodes':>8} {'completed':>9} {'failed':>6} {'lost':>4}  failure reasons")
    for row in CASES:
        reasons = ", ".join(f"{k} x{v}" for k, v in sorted(row["reasons"].items())) or "-"
        tr.write_line(f"{row['case']:<56} {row['injected']:>6} {row['episodes']:>8} {row['completed']:>9} "
                      f"{row['failed']:>6} {row['lost']:>4}  {reasons}")
    total = {k: sum(r[k] for r in CASES) for k in ("injected", "episodes", "completed", "failed", "lost")}
    tr.write_line(f"{'total':<56} {total['injected']:>6} {total['episodes']:>8} {total['completed']:>9} "
                  f"{total['failed']:>6} {total['lost']:>4}")
