"""`portrait-studio normalize FILE... [--out DIR] [--json]`: the production photo gate, on local files.

Runs exactly `check_photo` (what the normalize Lambda runs), one verdict per file, duplicates checked
across the given files in order. Refused files are a normal outcome (exit 0); bad arguments exit 2.
Never prints metadata: only the verdict, the output size and the timing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TextIO

__all__ = ["run"]

_COLUMNS = ("file", "accepted", "code", "width", "height", "faces", "ms", "message")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="portrait-studio normalize",
        description="Check photos exactly as an upload is checked: normalize, face gate, duplicates.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", type=Path, help="photos to check")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write accepted normalized JPEGs here")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    return parser


def run(argv: list[str], stdout: TextIO | None = None) -> int:
    """Exit status: 0 when every file got a verdict (refusals included), 2 on usage errors."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        files: list[Path] = args.files
        for path in files:
            if not path.is_file():
                parser.error(f"not a readable file: {path}")
        out_dir: Path | None = args.out
        if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
            parser.error(f"--out is not a directory: {out_dir}")
    except SystemExit as exit_:  # argparse prints the usage and exits 2 (0 for --help)
        return exit_.code if isinstance(exit_.code, int) else 2
    out = stdout or sys.stdout
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    from portrait_studio.config import get_settings
    from portrait_studio.errors import PhotoRejected
    from portrait_studio.services.photos import check_photo

    settings = get_settings()
    hashes: dict[str, str] = {}
    if not args.json:
        _print_header(out)
    for index, path in enumerate(files):
        data = path.read_bytes()
        started = time.perf_counter()
        row: dict[str, object] = {"file": str(path)}
        try:
            checked = check_photo(data, settings, hashes)
        except PhotoRejected as rejection:
            details = rejection.details
            row |= {"accepted": False, "code": rejection.code, "message": rejection.message}
            row |= {"width": details.get("width"), "height": details.get("height"), "faces": details.get("faces")}
        else:
            hashes[str(path)] = checked.quality.phash
            row |= {"accepted": True, "code": "accepted", "message": "Looks good."}
            row |= {"width": checked.normalized.width, "height": checked.normalized.height, "faces": 1}
            if out_dir is not None:
                # The index keeps two inputs with the same name apart.
                (out_dir / f"{index:03d}_{path.stem}.jpg").write_bytes(checked.normalized.jpeg)
        row["ms"] = round((time.perf_counter() - started) * 1000.0, 1)
        del data
        if args.json:
            out.write(json.dumps({key: row.get(key) for key in _COLUMNS}) + "\n")
        else:
            _print_row(out, row)
        out.flush()
    return 0


_WIDTHS = {"file": 40, "accepted": 8, "code": 16, "width": 5, "height": 6, "faces": 5, "ms": 8}


def _print_header(out: TextIO) -> None:
    cells = [name.ljust(_WIDTHS[name]) if name in _WIDTHS else name for name in _COLUMNS]
    out.write("  ".join(cells).rstrip() + "\n")


def _print_row(out: TextIO, row: dict[str, object]) -> None:
    cells: list[str] = []
    for name in _COLUMNS:
        value = row.get(name)
        text = "" if value is None else ("yes" if value is True else "no" if value is False else str(value))
        if name == "file" and len(text) > _WIDTHS["file"]:
            text = "…" + text[-(_WIDTHS["file"] - 1) :]
        width = _WIDTHS.get(name)
        if width is None:
            cells.append(text)
        elif name in ("width", "height", "faces", "ms"):
            cells.append(text.rjust(width))
        else:
            cells.append(text.ljust(width))
    out.write("  ".join(cells).rstrip() + "\n")
