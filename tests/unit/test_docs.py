"""The README and docs/ stay true, offline: every relative link (and `#anchor`) resolves, every command they quote
would still find what it names, and the README stays a front door.

- links: `[text](path)` and `[text](path#anchor)` relative to the page (fenced code excluded) point to an existing
  file or folder; an anchor into a Markdown page names one of its headings, slugged as GitHub does;
- commands, in code (inline spans and fenced blocks): `make TARGET` names a target of the Makefile;
  `python FILE.py`, `.venv/bin/python FILE.py`, `bash FILE.sh` name an existing file, `python -m MODULE` a module of
  this repository; `portrait-studio SUBCOMMAND` a subcommand the CLI dispatches; a path quoted in code under one of
  the repository's folders (or `services/`, `adapters/` of the shared package) exists;
- every `PORTRAIT_*` variable mentioned is a field of the settings model or read somewhere in the code or template;
- README.md is at most 150 lines and opens with the two commands a new user runs: `make demo`, `make test`.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from portrait_studio import cli
from portrait_studio.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared" / "portrait_studio"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PAGE_IDS = [str(p.relative_to(ROOT)) for p in PAGES]
README_MAX_LINES = 150

# Folders a quoted path may start with: the repository's own, and the shared package's (`services/lifecycle.py`).
REPO_FOLDERS = (
    "benchmarks",
    "docs",
    "events",
    "functions",
    "infra",
    "layers",
    "samples",
    "scripts",
    "shared",
    "tests",
    "web",
)
SHARED_FOLDERS = ("services", "adapters", "face_models")

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
MAKE = re.compile(r"(?<![\w./-])make[ \t]+([^\n#;&|)`]*)")
SCRIPT = re.compile(r"(?<![\w-])(?:\S*/)?(?:python[0-9.]*|bash|sh)[ \t]+([\w./-]+\.(?:py|sh))(?![\w.])")
MODULE = re.compile(r"(?<![\w-])(?:\S*/)?python[0-9.]*[ \t]+-m[ \t]+([A-Za-z_][\w.]*)")
CLI = re.compile(r"(?<![\w/.-])portrait-studio[ \t]+([a-z][\w-]*)")
QUOTED_PATH = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+/?$")
ENV = re.compile(r"\bPORTRAIT_[A-Z0-9_]*[A-Z0-9]\b")


def split_fences(text: str) -> tuple[str, list[str]]:
    """The page without its fenced code blocks (their lines blanked, so line numbers hold), and those blocks."""
    prose: list[str] = []
    blocks: list[str] = []
    current: list[str] | None = None
    marker = ""
    for line in text.splitlines():
        match = FENCE.match(line)
        if current is None and match:
            current, marker = [], match.group(1)
            prose.append("")
        elif current is not None and match and match.group(1)[0] == marker[0] and len(match.group(1)) >= len(marker):
            blocks.append("\n".join(current))
            current = None
            prose.append("")
        elif current is not None:
            current.append(line)
            prose.append("")
        else:
            prose.append(line)
    if current is not None:
        blocks.append("\n".join(current))
    return "\n".join(prose), blocks


def code_of(page: Path) -> list[str]:
    """Everything a page quotes as code: each inline span and each fenced block."""
    prose, blocks = split_fences(page.read_text())
    return [m.group(2).strip() for m in INLINE_CODE.finditer(prose)] + blocks


def links_of(page: Path) -> Iterator[str]:
    prose, _ = split_fences(page.read_text())
    without_code = INLINE_CODE.sub("code", prose)  # a span is never a link, and its brackets are not Markdown's
    for match in LINK.finditer(without_code):
        yield match.group(1)
    for line in without_code.splitlines():
        ref = REFERENCE_LINK.match(line)
        if ref:
            yield ref.group(1)


def github_slug(heading: str) -> str:
    """GitHub's heading anchor: the rendered text lower-cased, punctuation dropped except '-' and '_', spaces → '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML renders as nothing
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@cache
def anchors_of(page: Path) -> frozenset[str]:
    prose, _ = split_fences(page.read_text())
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for line in prose.splitlines():
        heading = HEADING.match(line)
        if heading:
            slug = github_slug(heading.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
        anchors.update(HTML_ANCHOR.findall(line))
    return frozenset(anchors)


@cache
def make_targets() -> frozenset[str]:
    targets: set[str] = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line[:1] in ("\t", " ", "#") or "=" in line.split(":", 1)[0]:
            continue
        rule = re.match(r"^([^:#=]+?)\s*::?(?!=)", line)
        if rule:
            targets.update(t for t in rule.group(1).split() if "$(" not in t and not t.startswith("."))
    return frozenset(targets)


@cache
def cli_subcommands() -> frozenset[str]:
    """The subcommands `portrait-studio` dispatches: every string `main` compares its `command` with."""
    tree = ast.parse(inspect.getsource(cli.main))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "command":
            for comparator in node.comparators:
                for constant in ast.walk(comparator):
                    if isinstance(constant, ast.Constant) and isinstance(constant.value, str):
                        names.add(constant.value)
    return frozenset(names)


@cache
def settings_variables() -> frozenset[str]:
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.add(alias.upper() if isinstance(alias, str) else f"{prefix}{name}".upper())
    return frozenset(names)


@cache
def variables_in_code() -> frozenset[str]:
    """`PORTRAIT_*` names the code, the template and the build read (this file's own examples excluded)."""
    found: set[str] = set()
    files = [ROOT / "template.yaml", ROOT / "Makefile", ROOT / "samconfig.toml"]
    for folder in ("shared", "functions", "infra", "scripts", "benchmarks", "tests", "layers"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".sh", ".yaml", ".toml", ".json")]
    for path in files:
        if path.is_file() and path.resolve() != Path(__file__).resolve():
            found.update(ENV.findall(path.read_text(errors="replace")))
    return frozenset(found)


def module_exists(module: str) -> bool | None:
    """Whether `python -m module` finds it here; None when it is not this repository's (pytest, pip, ...)."""
    parts = module.split(".")
    for base in (ROOT, SHARED.parent):
        if (base / parts[0]).is_dir() or (base / f"{parts[0]}.py").is_file():
            target = base.joinpath(*parts)
            return target.with_suffix(".py").is_file() or (target / "__main__.py").is_file()
    return None


def quoted_path_exists(text: str) -> bool | None:
    """Whether a path quoted in code exists; None when it is not a path into this repository."""
    if not QUOTED_PATH.match(text):
        return None
    first = text.split("/", 1)[0]
    if first in REPO_FOLDERS:
        return (ROOT / text).exists()
    if first in SHARED_FOLDERS:
        return (SHARED / text).exists()
    return None


def test_every_page_is_found() -> None:
    assert ROOT / "README.md" in PAGES
    assert len(PAGES) > 1, "docs/ has no Markdown pages"


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_relative_links_point_to_existing_files_and_headings(page: Path) -> None:
    broken = []
    for target in links_of(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto:, ...
            continue
        path_part, _, anchor = target.partition("#")
        destination = page if not path_part else (page.parent / path_part).resolve()
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor.lower() not in anchors_of(destination):
            broken.append(f"{target}: no heading #{anchor} in {destination.relative_to(ROOT)}")
    assert broken == [], f"{page.relative_to(ROOT)}: broken links:\n" + "\n".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_quoted_make_targets_exist(page: Path) -> None:
    missing = set()
    for code in code_of(page):
        for match in MAKE.finditer(code):
            for token in match.group(1).split():
                if "=" in token or token.startswith("-"):
                    break  # a variable (`UPGRADE=--upgrade`) or a flag: the targets are over
                if token not in make_targets():
                    missing.add(token)
    assert not missing, f"{page.relative_to(ROOT)} quotes make targets the Makefile lacks: {sorted(missing)}"


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_quoted_scripts_modules_and_paths_exist(page: Path) -> None:
    missing = set()
    for code in code_of(page):
        missing.update(f"{path} (run)" for path in SCRIPT.findall(code) if not (ROOT / path).is_file())
        missing.update(f"-m {module}" for module in MODULE.findall(code) if module_exists(module) is False)
        head = code.split(maxsplit=1)[0] if code.strip() else ""  # `benchmarks/identity.py --real DIR`
        missing.update(path for path in {code, head} if quoted_path_exists(path) is False)
    assert not missing, f"{page.relative_to(ROOT)} quotes files or modules that do not exist: {sorted(missing)}"


def test_the_cli_subcommands_are_read_from_its_dispatch() -> None:
    assert {"normalize", "likeness", "retention-report", "ledger", "store-webhook-secret"} <= cli_subcommands()
    assert cli.main(["no-such-subcommand"]) == 2  # anything else is refused, so the set above is the whole CLI


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_quoted_cli_subcommands_exist(page: Path) -> None:
    unknown = {sub for code in code_of(page) for sub in CLI.findall(code)} - cli_subcommands()
    assert not unknown, f"{page.relative_to(ROOT)} quotes portrait-studio subcommands the CLI lacks: {sorted(unknown)}"


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_portrait_variables_are_settings_or_read_by_the_code(page: Path) -> None:
    mentioned = set(ENV.findall(page.read_text()))
    unknown = mentioned - settings_variables() - variables_in_code()
    assert not unknown, f"{page.relative_to(ROOT)} mentions PORTRAIT_ variables nothing reads: {sorted(unknown)}"


def test_settings_variables_carry_the_models_prefix() -> None:
    assert Settings.model_config.get("env_prefix") == "PORTRAIT_"
    assert "PORTRAIT_RETENTION_HOURS" in settings_variables()


def test_the_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; at most {README_MAX_LINES}"
    _, blocks = split_fences("\n".join(lines[:10]))
    assert blocks, "README.md must open with the commands a new user runs"
    commands = [line.split("#", 1)[0].strip() for line in blocks[0].splitlines() if line.strip()]
    assert commands[:2] == ["make demo", "make test"], commands


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """The helpers on a page made to be wrong: a dead link and anchor, an unknown target, script and subcommand."""
    page = tmp_path / "page.md"
    page.write_text(
        "# A heading: with `code`, punctuation → and_under\n\n"
        "[gone](nowhere.md) [bad anchor](#no-such) [good anchor](#a-heading-with-code-punctuation--and_under)\n\n"
        "`make no-such-target` `python benchmarks/no_such.py` `portrait-studio no-such` `infra/no_such.py`\n\n"
        "```sh\nmake lock UPGRADE=--upgrade   # a variable is not a target\n```\n"
    )
    assert "a-heading-with-code-punctuation--and_under" in anchors_of(page)
    assert list(links_of(page)) == ["nowhere.md", "#no-such", "#a-heading-with-code-punctuation--and_under"]
    code = code_of(page)
    assert [m.group(1).split()[0] for c in code for m in MAKE.finditer(c)] == ["no-such-target", "lock"]
    assert "no-such-target" not in make_targets() and "lock" in make_targets()
    assert [p for c in code for p in SCRIPT.findall(c)] == ["benchmarks/no_such.py"]
    assert [s for c in code for s in CLI.findall(c)] == ["no-such"]
    assert quoted_path_exists("infra/no_such.py") is False and quoted_path_exists("image/jpeg") is None
    assert module_exists("scripts.openapi") and not module_exists("scripts.no_such") and module_exists("pytest") is None
