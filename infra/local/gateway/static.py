"""The web page (`web/`), served as the host serves it: with `web/_headers`' headers and its own origins."""

from __future__ import annotations

from infra.local.gateway.web_headers import served_headers
from infra.local.template import ROOT

WEB_DIR = ROOT / "web"


def static(method: str, path: str, api_url: str, r2_url: str) -> tuple[int, dict[str, str], bytes]:
    not_found = b'{"error":{"code":"not_found","message":"No such route."}}'
    if method not in ("GET", "HEAD") or not WEB_DIR.is_dir():
        return 404, {"Content-Type": "application/json"}, not_found
    target = (WEB_DIR / (path.lstrip("/") or "index.html")).resolve()
    if not target.is_file() or WEB_DIR.resolve() not in target.parents or target.name.startswith("_"):
        return 404, {"Content-Type": "application/json"}, not_found  # `_headers` is the host's, not served
    types = {
        ".html": "text/html; charset=utf-8",
        ".css": "text/css",
        ".js": "text/javascript",
        ".svg": "image/svg+xml",
    }
    headers = served_headers(path or "/", api_url, r2_url)  # web/_headers, as production serves it
    headers["Content-Type"] = types.get(target.suffix, "application/octet-stream")
    return 200, headers, target.read_bytes()
