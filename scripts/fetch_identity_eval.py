"""Assemble the real-output identity evaluation set (benchmarks/identity_real/manifest.json) into a local folder.

    .venv/bin/python scripts/fetch_identity_eval.py --out ../identity-eval [--mirrors DIR]

Reads each source repository at the manifest's commit, either from a bare mirror under --mirrors named
`owner+name/repo` (what the sessions' fetch tool leaves in /work/.mirror) or, when absent, by cloning it
from GitHub into --mirrors (needs network and git). Writes DIR/<person>/refs/NN_<name> and
DIR/<person>/outputs/NN.png (the published 3x3 result grids cut into their cells) and DIR/people.json
(person -> group). Nothing is committed: the photos show real people and no license grants their reuse.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "benchmarks" / "identity_real" / "manifest.json"
# git by its full path; its arguments come from the committed manifest, never from the images.
GIT = shutil.which("git") or "git"


def git_dir(mirrors: Path, repo: str, commit: str) -> Path:
    found = mirrors / repo.replace("/", "+") / "repo"
    if not found.is_dir():
        found.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([GIT, "clone", "--bare", f"https://github.com/{repo}.git", str(found)], check=True)  # noqa: S603
    has = subprocess.run([GIT, "--git-dir", str(found), "cat-file", "-e", commit], capture_output=True)  # noqa: S603
    if has.returncode:
        raise SystemExit(f"{repo}: commit {commit} not in {found}; fetch it (git fetch origin {commit})")
    return found


def blob(directory: Path, commit: str, path: str) -> bytes:
    return subprocess.run(  # noqa: S603
        [GIT, "--git-dir", str(directory), "show", f"{commit}:{path}"], check=True, capture_output=True
    ).stdout


def bands(profile: list[bool], parts: int) -> list[tuple[int, int]]:
    """The `parts` longest runs of content (True) along one axis: grid cells between white gutters."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i, content in enumerate([*profile, False]):
        if content and start is None:
            start = i
        elif not content and start is not None:
            runs.append((start, i))
            start = None
    longest = sorted(runs, key=lambda run: run[1] - run[0], reverse=True)[:parts]
    return sorted(longest)


def cut_grid(data: bytes, rows: int, cols: int) -> list[bytes]:
    """The cells of a results grid (white gutters, a dashed frame), row by row, as PNGs."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    grey = np.asarray(rgb.convert("L"), dtype=np.float64)
    # A gutter line is almost all near-white; a line through pictures is not.
    row_bands = bands(list((grey < 235).mean(axis=1) > 0.5), rows)
    cells: list[bytes] = []
    for top, bottom in row_bands:
        strip = grey[top:bottom]
        for left, right in bands(list((strip < 235).mean(axis=0) > 0.5), cols):
            buffer = io.BytesIO()
            rgb.crop((left, top, right, bottom)).save(buffer, "PNG")
            cells.append(buffer.getvalue())
    if len(cells) != rows * cols:
        raise SystemExit(f"expected {rows}x{cols} cells, found {len(cells)}")
    return cells


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    args = parser.parse_args()
    manifest = json.loads(MANIFEST.read_text())
    dirs = {
        name: (git_dir(args.mirrors, source["repo"], source["commit"]), source["commit"])
        for name, source in manifest["sources"].items()
    }
    groups: dict[str, str] = {}
    for person, entry in manifest["people"].items():
        refs, outputs = args.out / person / "refs", args.out / person / "outputs"
        refs.mkdir(parents=True, exist_ok=True)
        outputs.mkdir(parents=True, exist_ok=True)
        for index, (source, path) in enumerate(entry["refs"]):
            (refs / f"{index:02d}_{Path(path).name}").write_bytes(blob(*dirs[source], path))
        source, path, rows, cols = entry["outputs"]
        for index, cell in enumerate(cut_grid(blob(*dirs[source], path), rows, cols)):
            (outputs / f"{index:02d}.png").write_bytes(cell)
        groups[person] = entry["group"]
        print(f"{person}: {len(entry['refs'])} references, {rows * cols} outputs", file=sys.stderr)
    (args.out / "people.json").write_text(json.dumps(groups, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
