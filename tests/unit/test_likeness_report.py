"""`portrait-studio likeness`: intake's person check and collect's output gate on local files, as support sees it.

Runs on the public-domain demo photos in samples/ (person A: three photos of one man; person B: somebody else);
the extra-faces case uses the corpus ($PORTRAIT_CORPUS, else ../shared/corpus) and is skipped without it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from portrait_studio.cli import main as cli_main
from portrait_studio.config import Settings
from portrait_studio.services.likeness_report import assess

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
CORPUS = Path(os.environ.get("PORTRAIT_CORPUS") or REPO.parent / "shared" / "corpus")
A1, A2, A3 = SAMPLES / "person-a-1.jpg", SAMPLES / "person-a-2.jpg", SAMPLES / "person-a-3.heic"
B, NO_FACE = SAMPLES / "person-b.png", SAMPLES / "no-face.jpg"


def run_json(capsys: pytest.CaptureFixture[str], refs: list[Path], outputs: list[Path]) -> dict[str, object]:
    argv = ["likeness", "--refs", *map(str, refs), "--outputs", *map(str, outputs), "--json"]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    return json.loads(out)  # type: ignore[no-any-return]


def test_the_demo_upload_and_outputs_get_the_verdicts_a_job_would(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, [A1, A2, A3, B, NO_FACE], [A2, B, NO_FACE])

    refs = {Path(r["file"]).name: r for r in report["references"]}  # type: ignore[attr-defined]
    assert {name: r["verdict"] for name, r in refs.items()} == {
        "person-a-1.jpg": "accepted",
        "person-a-2.jpg": "accepted",
        "person-a-3.heic": "accepted",
        "person-b.png": "different_person",
        "no-face.jpg": "no_face",
    }
    outs = {Path(o["file"]).name: o for o in report["outputs"]}  # type: ignore[attr-defined]
    assert outs["person-a-2.jpg"]["verdict"] == "kept"
    assert outs["person-a-2.jpg"]["distance"] <= Settings().identity_output_max_distance
    assert outs["person-a-2.jpg"]["likeness"] > 50
    assert outs["person-b.png"]["verdict"] == "not_like_you"
    assert outs["person-b.png"]["likeness"] < 50
    assert outs["no-face.jpg"] == {"file": str(NO_FACE), "verdict": "no_face", "distance": None, "likeness": None}


def test_one_reference_is_its_own_consensus(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, [A1], [A2, B])

    assert [r["verdict"] for r in report["references"]] == ["accepted"]  # type: ignore[attr-defined]
    assert [o["verdict"] for o in report["outputs"]] == ["kept", "not_like_you"]  # type: ignore[attr-defined]


def test_references_of_two_people_judge_no_output(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, [A1, B], [A2])

    assert [r["verdict"] for r in report["references"]] == ["no_single_person"] * 2  # type: ignore[attr-defined]
    assert report["outputs"] == [{"file": str(A2), "verdict": "not_judged", "distance": None, "likeness": None}]


def test_an_unreadable_output_counts_as_no_face_and_a_duplicate_reference_is_refused(tmp_path: Path) -> None:
    report = assess(
        [("a1", A1.read_bytes()), ("a1 again", A1.read_bytes()), ("a2", A2.read_bytes())],
        [("garbage", b"not an image")],
        Settings(),
    )
    assert [r.verdict for r in report.references] == ["accepted", "duplicate", "accepted"]
    assert [o.verdict for o in report.outputs] == ["no_face"]


@pytest.mark.skipif(not (CORPUS / "MANIFEST.json").is_file(), reason=f"photo corpus not found at {CORPUS}")
def test_a_group_photo_output_is_dropped_for_extra_faces() -> None:
    group = (CORPUS / "faces/two_people_composite.jpg").read_bytes()
    report = assess([("a1", A1.read_bytes())], [("group", group)], Settings())
    assert report.outputs[0].verdict == "extra_faces"


def test_the_table_names_each_file_and_no_output_carries_a_descriptor(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["likeness", "--refs", str(A1), str(A2), "--outputs", str(A3), str(B)]) == 0
    table = capsys.readouterr().out
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("reference  accepted") and lines[3].startswith("output     not_like_you")
    assert "likeness" in lines[3]
    # A descriptor is 128 numbers: nothing printed comes near a run of them.
    assert len(re.findall(r"-?\d+\.\d+", table)) <= 2 * len(lines)
    report = run_json(capsys, [A1, A2], [A3, B])
    assert set(report) == {"references", "outputs"}
    assert all(set(o) == {"file", "verdict", "distance", "likeness"} for o in report["outputs"])  # type: ignore[attr-defined]


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli_main(["likeness", "--refs", str(A1)]) == 2
    assert cli_main(["likeness", "--refs", str(tmp_path / "missing.jpg"), "--outputs", str(A2)]) == 2
    assert "not a readable file" in capsys.readouterr().err
