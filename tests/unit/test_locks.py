"""The hashed locks must stay in step with the top-level pins they were compiled from (layer, dev, checkov).

`make lock` regenerates the locks (it needs PyPI); these checks need nothing but the files, so a top-level pin
changed without `make lock`, a hand-edited lock or an unhashed entry fails here instead of at deploy time.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPS = ROOT / "layers/deps"
SHA256 = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def _name(raw: str) -> str:
    """PEP 503 normalized name, extras dropped: pins are compared by name."""
    return re.sub(r"[-_.]+", "-", raw.split("[")[0]).lower()


def top_level_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            pins[_name(name)] = version
    return pins


def lock_entries(path: Path) -> dict[str, tuple[str, list[str]]]:
    """{name: (version, sha256s)} from a `uv pip compile --generate-hashes` file (entries continued with \\)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    entries: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        requirement = line.split()[0]
        assert "==" in requirement, f"{path.name}: {requirement} is not pinned with =="
        name, _, version = requirement.partition("==")
        marker = line.split(";", 1)[1].split("--hash")[0].strip() if ";" in line else ""
        key = _name(name) + (f"; {marker}" if marker else "")
        assert key not in entries, f"{path.name}: {key} appears twice"
        entries[key] = (version, SHA256.findall(line))
    return entries


def test_every_layer_requirement_is_in_the_lock_at_its_pin() -> None:
    lock = lock_entries(DEPS / "requirements.lock")
    for name, version in top_level_pins(DEPS / "requirements.txt").items():
        assert name in lock, f"{name} is in requirements.txt but not in requirements.lock: run `make lock`"
        assert lock[name][0] == version, f"{name}: requirements.txt pins {version}, the lock {lock[name][0]}"


@pytest.mark.parametrize(
    "lock",
    ["layers/deps/requirements.lock", "requirements-dev.lock", "requirements-checkov.lock", "requirements-uv.lock"],
)
def test_every_locked_package_is_pinned_with_hashes(lock: str) -> None:
    entries = lock_entries(ROOT / lock)
    assert entries
    for name, (_version, hashes) in entries.items():
        assert hashes, f"{lock}: {name} has no sha256, so --require-hashes would refuse the install"


def test_layer_lock_is_for_the_lambda_target_and_installed_with_hashes_required() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("\nlock:") :]
    for flag in ("--python-version 3.12", "--python-platform aarch64-manylinux_2_28", "--only-binary :all:",
                 "--generate-hashes", "-o requirements.lock"):  # fmt: skip
        assert flag in recipe
    assert "make lock" in (DEPS / "requirements.lock").read_text().splitlines()[1]
    layer_makefile = (DEPS / "Makefile").read_text()
    assert "--require-hashes" in layer_makefile
    assert "-r requirements.lock" in layer_makefile
    assert "-r requirements.txt" not in layer_makefile


FACE_MODELS = ROOT / "shared/portrait_studio/face_models"
# A row of NOTICE.md's table: | `file` | what | source | licence | sha256 |
NOTICE_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|.*\|\s*([0-9a-f]{64})\s*\|\s*$", re.M)


def test_face_models_are_the_files_notice_documents() -> None:
    """The SharedLayer ships shared/portrait_studio/face_models/ as committed: every model in it is one NOTICE.md
    lists (source, licence) and has the sha256 NOTICE.md gives, so a swapped or re-quantized file fails here."""
    documented = dict(NOTICE_ROW.findall((FACE_MODELS / "NOTICE.md").read_text()))
    assert documented, "NOTICE.md has no | `file` | ... | sha256 | rows"
    shipped = {path.name for path in FACE_MODELS.iterdir() if path.name != "NOTICE.md"}
    assert shipped == set(documented), f"face_models/ holds {sorted(shipped)}, NOTICE.md lists {sorted(documented)}"
    for name, sha256 in documented.items():
        actual = hashlib.sha256((FACE_MODELS / name).read_bytes()).hexdigest()
        assert actual == sha256, f"{name}: sha256 {actual}, NOTICE.md documents {sha256}"


def test_the_shipped_hog_detector_is_the_one_dlib_builds_in(tmp_path: Path) -> None:
    """faces.py loads dlib's frontal face detector from a file (2 ms, not 400): loaded and saved again, it is
    byte for byte what dlib's own `get_frontal_face_detector()` saves, so it finds the same faces with the same
    scores. A dlib upgrade that changes the built-in detector fails here: `scripts/save_hog_detector.py`."""
    import dlib

    from portrait_studio.services.faces import HOG_DETECTOR_FILE

    dlib.get_frontal_face_detector().save(str(tmp_path / "built_in.svm"))
    dlib.fhog_object_detector(str(HOG_DETECTOR_FILE)).save(str(tmp_path / "shipped.svm"))
    built_in = (tmp_path / "built_in.svm").read_bytes()
    assert (tmp_path / "shipped.svm").read_bytes() == built_in
    assert HOG_DETECTOR_FILE.read_bytes() == built_in


def test_face_models_are_package_data() -> None:
    """Installed (not only in the layer's copy of shared/), portrait_studio carries the models and their notice."""
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data["portrait_studio"]
    for path in FACE_MODELS.iterdir():
        relative = path.relative_to(FACE_MODELS.parent).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), f"{relative} is not package data"


def _group(groups: dict[str, list[object]], name: str) -> list[str]:
    pins: list[str] = []
    for item in groups[name]:
        pins += _group(groups, item["include-group"]) if isinstance(item, dict) else [str(item)]
    return pins


def test_dev_lock_holds_every_runtime_and_test_pin() -> None:
    """`make setup` installs requirements-dev.lock alone (then the project with --no-deps): it must hold them all."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = pyproject["project"]["dependencies"] + _group(pyproject["dependency-groups"], "test")
    lock = lock_entries(ROOT / "requirements-dev.lock")
    for pin in pins:
        name, _, version = pin.partition("==")
        locked = {v for key, (v, _hashes) in lock.items() if key.split(";")[0] == _name(name)}
        assert locked == {version}, f"{pin}: requirements-dev.lock holds {locked or 'nothing'}: run `make lock`"
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes --compile-bytecode -r requirements-dev.lock" in makefile
    assert "--no-deps -e ." in makefile


def test_checkov_lock_matches_its_pin_in_pyproject() -> None:
    group = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["checkov"]
    lock = lock_entries(ROOT / "requirements-checkov.lock")
    for pin in group:
        name, _, version = pin.partition("==")
        assert lock[_name(name)][0] == version, f"{pin} is not what requirements-checkov.lock holds: `make lock`"


def test_template_checkov_skips_each_give_a_reason() -> None:
    skips = re.findall(r"#\s*checkov:skip=(\S+?)(?::\s*(.*))?$", (ROOT / "template.yaml").read_text(), re.M)
    assert skips
    for check, reason in skips:
        assert re.fullmatch(r"CKV_AWS_\d+", check)
        assert reason and len(reason) > 20, f"checkov skip of {check} without a reason"


def test_uv_lock_holds_the_makefiles_uv_version_and_uv_installs_with_hashes_required() -> None:
    """uv installs the dev and checkov locks, so uv itself comes hashed from its own lock, at UV_VERSION."""
    makefile = (ROOT / "Makefile").read_text()
    version = re.search(r"^UV_VERSION := (\S+)$", makefile, re.M)
    assert version, "the Makefile pins no UV_VERSION"
    assert lock_entries(ROOT / "requirements-uv.lock")["uv"][0] == version.group(1), "run `make lock`"
    assert "pip install --quiet --disable-pip-version-check --require-hashes -r requirements-uv.lock" in makefile
    installs = re.sub(r"\\\n\s*", "", makefile)  # recipe lines continued with a backslash, joined
    for lock in ("requirements-dev.lock", "requirements-checkov.lock"):
        assert f"--require-hashes --compile-bytecode -r {lock}" in installs
