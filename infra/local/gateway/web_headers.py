"""The web page's response headers from `web/_headers` (Cloudflare Pages' format), as the host serves them.

The local gateway serves the page with the same headers, its own origins filled in, so the browser tests run
under the production Content-Security-Policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from infra.local.template import ROOT

HEADERS_FILE = ROOT / "web" / "_headers"
PLACEHOLDER = re.compile(r"\{([A-Z0-9_]+)\}")

Rule = tuple[str, dict[str, str]]


def parse(text: str) -> list[Rule]:
    """`[(path pattern, {name: value})]`: a pattern at the start of a line, its headers indented below it."""
    rules: list[Rule] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            if not line.startswith("/"):
                raise ValueError(f"line {number}: a path pattern starts with /: {line!r}")
            rules.append((line.strip(), {}))
            continue
        name, colon, value = line.strip().partition(":")
        if not rules or not colon or not name.strip() or not value.strip():
            raise ValueError(f"line {number}: expected `Name: value` under a path pattern: {line!r}")
        rules[-1][1][name.strip()] = value.strip()
    return rules


def matches(pattern: str, path: str) -> bool:
    """Pages' patterns: `*` matches anything (a splat), `:name` one path segment."""
    regex = "".join(
        ".*" if part == "*" else "[^/]+" if part.startswith(":") else re.escape(part)
        for part in re.split(r"(\*|:[A-Za-z]\w*)", pattern)
    )
    return re.fullmatch(regex, path) is not None


def headers_for(path: str, rules: list[Rule], origins: Mapping[str, str]) -> dict[str, str]:
    """Every matching rule's headers (a name set twice is joined, as Pages does), placeholders filled in."""
    found: dict[str, str] = {}
    for pattern, headers in rules:
        if matches(pattern, path):
            for name, value in headers.items():
                found[name] = f"{found[name]}, {value}" if name in found else value
    return {name: fill(value, origins) for name, value in found.items()}


def fill(value: str, origins: Mapping[str, str]) -> str:
    def origin(match: re.Match[str]) -> str:
        if match.group(1) not in origins:
            raise KeyError(f"no value for {{{match.group(1)}}} in web/_headers")
        return origins[match.group(1)]

    return PLACEHOLDER.sub(origin, value)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"not an absolute URL: {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def served_headers(path: str, api_url: str, r2_url: str, file: Path = HEADERS_FILE) -> dict[str, str]:
    """The headers the host sends with `path`, for these API and R2 URLs (only their origins are used). The file
    is read each time, so `make dev` picks up edits."""
    rules = parse(file.read_text(encoding="utf-8")) if file.is_file() else []
    return headers_for(path, rules, {"API_ORIGIN": origin_of(api_url), "R2_ORIGIN": origin_of(r2_url)})
