"""What the model benchmarks share: their data (lspet_bench, real, train 4,000 / val 500,
or synthetic people) and their JSON report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LSPET_BENCH = REPO.parent / "shared" / "realdata" / "lspet_bench"


def add_data_arguments(parser) -> None:
    """The options :func:`data_splits` reads: ``--data``, ``--lspet-bench``,
    ``--synthetic-train`` and ``--synthetic-val``."""
    parser.add_argument("--data", nargs="+", default=["lspet_bench", "synthetic"],
                        choices=["lspet_bench", "synthetic"])
    parser.add_argument("--lspet-bench", type=Path, default=DEFAULT_LSPET_BENCH)
    parser.add_argument("--synthetic-train", type=int, default=2000)
    parser.add_argument("--synthetic-val", type=int, default=300)


def data_splits(args, scratch: Path):
    """``(name, train_records, val_records, skeleton)`` for each data set in ``args.data``
    (options from :func:`add_data_arguments`), synthetic people rendered under ``scratch``;
    lspet_bench is skipped with a note when it is not found."""
    for name in args.data:
        split = load_split(name, lspet_bench=args.lspet_bench, scratch=scratch / name,
                           synthetic_train=args.synthetic_train,
                           synthetic_val=args.synthetic_val)
        if split is not None:
            yield (name, *split)


def load_split(name: str, *, lspet_bench: Path, scratch: Path, synthetic_train: int,
               synthetic_val: int):
    """``(train_records, val_records, skeleton)`` for ``"lspet_bench"`` or ``"synthetic"``;
    ``None`` (with a note on stderr) when lspet_bench is not found."""
    from kpose.data import read_coco, read_lsp, write_synthetic_dataset
    from kpose.skeletons import COCO_17, LSP_14

    if name == "lspet_bench":
        if not (lspet_bench / "joints_train.mat").is_file():
            print(f"skipping lspet_bench: not found at {lspet_bench}", file=sys.stderr)
            return None
        images = lspet_bench / "images"
        train = read_lsp(lspet_bench / "joints_train.mat", images, variant="lspet")
        val = read_lsp(lspet_bench / "joints_val.mat", images, variant="lspet",
                       first_index=4001)
        return train, val, LSP_14
    train = read_coco(write_synthetic_dataset(scratch / "train", synthetic_train, seed=1,
                                              progress=False))
    val = read_coco(write_synthetic_dataset(scratch / "val", synthetic_val, seed=2,
                                            progress=False))
    return train, val, COCO_17


def earlier_results(path: Path, benchmark: str, args, *, ignore=("data", "variants")) -> list:
    """The result rows of an earlier report at ``path`` made with the same settings (those
    in ``ignore`` may differ), so that a long benchmark continues where it stopped; ``[]``
    when there is none or the settings differ."""
    if not path.is_file():
        return []
    earlier = json.loads(path.read_text())
    settings = _settings(args)
    if earlier.get("benchmark") != benchmark or any(
            earlier.get("settings", {}).get(k) != v for k, v in settings.items()
            if k not in ignore):
        return []
    return list(earlier.get("results", []))


def _settings(args) -> dict:
    def plain(value):
        if isinstance(value, Path):  # the name only: no machine's folders in results
            return value.name
        return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value

    return {k: plain(v) for k, v in vars(args).items() if k not in ("json", "lspet_bench")}


def write_report(path: Path, benchmark: str, args, results: list, **extra) -> None:
    """Write ``{"benchmark", "settings", "results", **extra}`` JSON; ``settings`` are the
    command-line arguments (paths as their last component, the output and data paths left
    out)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": benchmark, "settings": _settings(args),
                                "results": results, **extra}, indent=2) + "\n")
