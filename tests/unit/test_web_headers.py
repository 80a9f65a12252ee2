"""The web page's production response headers (web/_headers, Cloudflare Pages' format) and their reader, which
the local gateway uses to serve the page under the same policy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.local.gateway.static import static
from infra.local.gateway.web_headers import HEADERS_FILE, headers_for, matches, parse, served_headers

API, R2 = "https://abc123.execute-api.eu-west-1.amazonaws.com", "https://acct.r2.cloudflarestorage.com"
WEB = HEADERS_FILE.parent


def production() -> dict[str, str]:
    return served_headers("/", API + "/", R2 + "/portrait-studio/key?X-Amz-Signature=1")


def directives(csp: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}


def test_the_production_page_carries_every_security_header() -> None:
    headers = production()
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert re.fullmatch(r"max-age=(\d+); includeSubDomains", headers["Strict-Transport-Security"])
    assert int(headers["Strict-Transport-Security"].split("=")[1].split(";")[0]) >= 31_536_000  # a year or more
    assert headers["Referrer-Policy"] == "no-referrer"  # tokens ride in the fragment, but never leak a path
    assert headers["X-Frame-Options"] == "DENY"


def test_the_csp_allows_only_what_the_page_loads_and_no_framing() -> None:
    csp = directives(production()["Content-Security-Policy"])
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]  # nothing inline, no eval
    assert csp["connect-src"] == ["'self'", API, R2]  # the API, and presigned PUTs/GETs on R2 (origins only)
    assert csp["img-src"] == ["'self'", "blob:", "data:", R2]
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"] and csp["form-action"] == ["'none'"]


def test_the_headers_file_names_no_local_or_wildcard_source() -> None:
    text = HEADERS_FILE.read_text()
    for banned in ("localhost", "127.0.0.1", "http:", "unsafe-inline", "unsafe-eval", " * ", " https: "):
        assert banned not in text, banned
    assert set(re.findall(r"\{([A-Z0-9_]+)\}", text)) == {"API_ORIGIN", "R2_ORIGIN"}


def test_the_page_loads_nothing_the_policy_would_block() -> None:
    """What web/ references is on the page's own origin: no third-party or inline script and style."""
    page = (WEB / "index.html").read_text()
    assert re.findall(r'<script[^>]*src="([^"]+)"', page) == ["app.js"]
    assert '<script type="module" src="app.js"></script>' in page  # deferred as before; it imports the rest
    assert re.findall(r'<link rel="stylesheet" href="([^"]+)"', page) == ["styles.css"]
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)  # no inline script
    assert "<style" not in page and not re.search(r"\sstyle\s*=", page)  # no inline style
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", page)  # no inline event handlers
    assert "url(" not in (WEB / "styles.css").read_text()  # no fonts or images the CSS would fetch


def test_the_scripts_are_modules_that_import_only_each_other() -> None:
    """app.js and the modules it imports: relative imports of files in web/ only (nothing third-party, no bare
    names a browser cannot resolve without a build step), none that the page never loads, no code from strings."""
    scripts = {path.resolve() for path in WEB.rglob("*.js")}
    loaded, queue = set(), [(WEB / "app.js").resolve()]
    while queue:
        script = queue.pop()
        if script in loaded:
            continue
        loaded.add(script)
        text = script.read_text()
        for specifier in re.findall(r"""^(?:import|export)\b[^;]*?\bfrom\s+['"]([^'"]+)['"]""", text, re.M | re.S):
            assert specifier.startswith(("./", "../")), (script.name, specifier)
            target = (script.parent / specifier).resolve()
            assert target in scripts, (script.name, specifier)
            queue.append(target)
        assert not re.search(r"\bimport\s*\(|\beval\s*\(|\bnew Function\b", text), script.name
        assert len(text.splitlines()) <= 600, script.name  # issue 23: each module small enough to read whole
    assert loaded == scripts


def test_the_local_gateway_serves_the_modules_as_javascript() -> None:
    """Browsers refuse a module script served under any other type."""
    for script in sorted(WEB.rglob("*.js")):
        path = "/" + script.relative_to(WEB).as_posix()
        status, headers, body = static("GET", path, "http://127.0.0.1:3000", "http://127.0.0.1:4566")
        assert (status, headers["Content-Type"], body) == (200, "text/javascript", script.read_bytes()), path
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_the_local_gateway_fills_in_its_own_origins() -> None:
    headers = served_headers("/index.html", "http://127.0.0.1:3000", "http://127.0.0.1:4566")
    csp = directives(headers["Content-Security-Policy"])
    assert csp["connect-src"] == ["'self'", "http://127.0.0.1:3000", "http://127.0.0.1:4566"]
    assert csp["frame-ancestors"] == ["'none'"]


def test_parse_reads_pages_format() -> None:
    rules = parse(
        "# a comment\n/*\n  X-A: 1\n  X-B: two: parts\n\n/app.js\n  Cache-Control: no-cache\n/img/:name\n  X-A: 2\n"
    )
    assert rules == [
        ("/*", {"X-A": "1", "X-B": "two: parts"}),
        ("/app.js", {"Cache-Control": "no-cache"}),
        ("/img/:name", {"X-A": "2"}),
    ]
    assert headers_for("/app.js", rules, {}) == {"X-A": "1", "X-B": "two: parts", "Cache-Control": "no-cache"}
    assert headers_for("/img/a.png", rules, {})["X-A"] == "1, 2"  # set twice: joined, as Pages does
    assert matches("/img/:name", "/img/a.png") and not matches("/img/:name", "/img/a/b.png")
    assert matches("/*", "/") and not matches("/app.js", "/app.jsx")


@pytest.mark.parametrize(
    "text",
    ["  X-A: 1\n", "/*\n  no colon\n", "/*\n  X-A:\n", "*.js\n  X-A: 1\n"],
)
def test_parse_refuses_what_pages_would_not_understand(text: str) -> None:
    with pytest.raises(ValueError, match=r"line 1|line 2"):
        parse(text)


def test_an_unknown_placeholder_is_an_error_not_a_broken_policy(tmp_path: Path) -> None:
    file = tmp_path / "_headers"
    file.write_text("/*\n  Content-Security-Policy: connect-src {STRIPE_ORIGIN}\n")
    with pytest.raises(KeyError, match="STRIPE_ORIGIN"):
        served_headers("/", API, R2, file)
