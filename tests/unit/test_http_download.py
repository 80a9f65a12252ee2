"""Output images are fetched only from Replicate's delivery hosts, over HTTPS, never through a redirect."""

from __future__ import annotations

import httpx
import pytest

from portrait_studio.adapters.http_download import HttpDownloader
from portrait_studio.config import Settings
from portrait_studio.errors import OutputHostRefused, OutputInvalid

PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 32


def downloader(origins: tuple[str, ...] | None = None) -> tuple[HttpDownloader, list[str]]:
    asked: list[str] = []

    def serve(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        if request.url.path.startswith("/moved"):
            return httpx.Response(302, headers={"Location": "https://evil.example/x.png"})
        return httpx.Response(200, content=PNG, headers={"Content-Type": "image/png"})

    origins = origins if origins is not None else Settings().output_origins
    return HttpDownloader(origins, transport=httpx.MockTransport(serve)), asked


@pytest.mark.parametrize(
    "url",
    [
        "https://replicate.delivery/pbxt/abc/out-0.png",
        "https://pbxt.replicate.delivery/abc/out-0.png",
        "https://REPLICATE.delivery/abc/out-0.png?sig=1",
        "https://replicate.delivery:443/abc/out-0.png",
    ],
)
def test_outputs_on_replicates_delivery_hosts_are_fetched(url: str) -> None:
    fetch, asked = downloader()
    assert fetch.fetch(url, 1024) == (PNG, "image/png")
    assert asked == [url.replace("REPLICATE", "replicate").replace(":443", "")]


@pytest.mark.parametrize(
    "url",
    [
        "https://replicate.delivery.evil.com/x.png",  # a look-alike ending
        "https://evilreplicate.delivery/x.png",  # not a subdomain
        "http://replicate.delivery/x.png",  # no TLS
        "http://pbxt.replicate.delivery/x.png",
        "https://replicate.delivery@evil.com/x.png",  # userinfo: the host is evil.com
        "https://user:pw@replicate.delivery/x.png",  # userinfo on the right host is refused too
        "https://replicate.delivery:8443/x.png",  # another port is another origin
        "https://169.254.169.254/latest/meta-data/",
        "ftp://replicate.delivery/x.png",
        "file:///etc/passwd",
        "https://replicate.delivery:notaport/x.png",
        "//replicate.delivery/x.png",
    ],
)
def test_anything_else_is_refused_before_any_request(url: str) -> None:
    fetch, asked = downloader()
    with pytest.raises(OutputHostRefused) as refused:
        fetch.fetch(url, 1024)
    assert asked == []
    assert refused.value.code == "output_host_refused"
    assert isinstance(refused.value, OutputInvalid)  # collect drops it like any unusable output


def test_a_redirect_is_refused_not_followed() -> None:
    fetch, asked = downloader()
    with pytest.raises(OutputHostRefused, match="redirected"):
        fetch.fetch("https://replicate.delivery/moved/x.png?token=secret", 1024)
    assert asked == ["https://replicate.delivery/moved/x.png?token=secret"]  # and not evil.example


def test_the_error_never_carries_the_query_string() -> None:
    fetch, _ = downloader()
    with pytest.raises(OutputHostRefused) as refused:
        fetch.fetch("https://evil.example/x.png?X-Amz-Signature=abc123", 1024)
    assert "abc123" not in str(refused.value) and "evil.example/x.png" in str(refused.value)


def test_the_local_emulators_origin_is_allowed_when_configured() -> None:
    fetch, _ = downloader(("http://127.0.0.1:8123",))
    assert fetch.fetch("http://127.0.0.1:8123/files/p1/0.png", 1024)[0] == PNG
    for url in ("http://127.0.0.1:8124/files/p1/0.png", "https://replicate.delivery/x.png"):
        with pytest.raises(OutputHostRefused):
            fetch.fetch(url, 1024)


def test_origins_come_from_a_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTRAIT_OUTPUT_ORIGINS", "http://127.0.0.1:8123, https://*.example.org")
    assert Settings().output_origins == ("http://127.0.0.1:8123", "https://*.example.org")
    with pytest.raises(ValueError, match="not an origin"):
        HttpDownloader(("replicate.delivery",))
