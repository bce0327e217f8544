"""How long does each Colab notebook take, run top to bottom at full size on this machine?

Executes every notebook in ``colab/`` headless with nbclient (``KPOSE_NOTEBOOK_SMOKE``
unset, so at the sizes a Colab user gets), each in its own scratch folder with its own
synthetic-data cache, one after the other; prints minutes per notebook next to the
20-minute goal and writes JSON. A notebook that fails is reported with the error of the
cell that raised.

    python benchmarks/notebooks.py [--notebooks train_cpm export_edge] [--json notebooks.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

COLAB = Path(__file__).resolve().parents[1] / "colab"
NOTEBOOKS = ("train_cpm", "deeppose_cascade", "export_edge")
GOAL_MINUTES = 20.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", nargs="+", default=list(NOTEBOOKS), choices=NOTEBOOKS)
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds one cell may run before the notebook fails")
    parser.add_argument("--json", type=Path, default=Path("notebooks.json"))
    args = parser.parse_args()

    import nbclient
    import nbformat
    from nbclient.exceptions import CellExecutionError

    os.environ.pop("KPOSE_NOTEBOOK_SMOKE", None)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rows = []
    for name in args.notebooks:
        with tempfile.TemporaryDirectory(prefix=f"kpose-nb-{name}-") as folder:
            os.environ["KPOSE_CACHE"] = str(Path(folder) / "cache")
            notebook = nbformat.read(COLAB / f"{name}.ipynb", as_version=4)
            client = nbclient.NotebookClient(notebook, timeout=args.timeout,
                                             kernel_name="python3",
                                             resources={"metadata": {"path": folder}})
            started = time.perf_counter()
            error = None
            try:
                client.execute()
            except CellExecutionError as failure:
                error = str(failure).strip().splitlines()[-1]
            minutes = (time.perf_counter() - started) / 60.0
        rows.append({"notebook": name, "minutes": round(minutes, 2), "error": error,
                     "within_goal": error is None and minutes < GOAL_MINUTES})
        status = f"FAILED: {error}" if error else (
            "ok" if minutes < GOAL_MINUTES else f"over {GOAL_MINUTES:g} min")
        print(f"{name:18s} {minutes:6.1f} min  {status}", flush=True)
    report = {"benchmark": "notebooks", "cpu_count": os.cpu_count(),
              "machine": platform.machine(), "goal_minutes": GOAL_MINUTES, "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0 if all(row["error"] is None for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
