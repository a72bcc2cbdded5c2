"""HTTP Range on record content, as RFC 9110 §14 reads: one satisfiable byte range is a 206, one no
byte satisfies is a 416, and anything else (another unit, several ranges, a header that does not
parse) is ignored: the whole content with 200."""

from __future__ import annotations

import pytest

from archive_service.ingest import parse_range

from .conftest import Api, administrative

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "span"),
    [
        ("bytes=0-99", (0, 99)),
        ("BYTES=0-99", (0, 99)),  # range units are case-insensitive (§14.1)
        ("Bytes = 10 - 19", (10, 19)),
        ("bytes=990-", (990, 999)),
        ("bytes=990-5000", (990, 999)),  # last beyond the end is cut to it
        ("bytes=-10", (990, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=0-00000000000000000000001", (0, 1)),  # leading zeros are still small numbers
        ("bytes=000000000000000000001-", (1, 999)),
        ("bytes=0-" + "9" * 5000, (0, 999)),  # more digits than int() reads: still past the end
        ("bytes=-" + "9" * 5000, (0, 999)),
    ],
)
def test_one_satisfiable_range(header: str, span: tuple[int, int]) -> None:
    assert parse_range(header, SIZE) == span


@pytest.mark.parametrize(
    "header",
    [
        "",
        None,
        "items=0-9",  # another unit
        "bytes=0-9,20-29",  # several ranges: served whole rather than as multipart/byteranges
        "bytes=abc-def",
        "bytes=-",
        "bytes=9-3",  # last before first: not a valid range
        "bytes 0-9",
        "bytes=0x10-",
        "bytes=1-2-3",
    ],
)
def test_ranges_that_are_ignored(header: str | None) -> None:
    assert parse_range(header, SIZE) is None


def test_a_suffix_of_empty_content_is_the_whole_of_it() -> None:
    assert parse_range("bytes=-5", 0) is None  # §14.1.3: satisfiable; the (empty) whole, 200


@pytest.mark.parametrize(
    ("header", "size"),
    [("bytes=1000-", SIZE), ("bytes=-0", SIZE), ("bytes=0-", 0), ("bytes=" + "9" * 5000 + "-", SIZE)],
)
def test_unsatisfiable_range(header: str, size: int) -> None:
    with pytest.raises(ValueError):
        parse_range(header, size)


def test_through_the_api(api: Api) -> None:
    data = bytes(range(256)) * 4
    rid = api.ingest(data, administrative(title="Range probe")).json()["record_id"]
    h = api.token("archivist")
    url = f"/records/{rid}/content"
    got = api.client.get(url, headers={**h, "Range": "BYTES=10-19"})
    assert (got.status_code, got.content, got.headers["content-range"]) == (206, data[10:20], "bytes 10-19/1024")
    for ignored in ("bytes=0-1,5-6", "bytes=zz", "lines=1-2"):
        got = api.client.get(url, headers={**h, "Range": ignored})
        assert (got.status_code, got.content) == (200, data), ignored
    got = api.client.get(url, headers={**h, "Range": "bytes=1024-"})
    assert got.status_code == 416 and got.headers["content-range"] == "bytes */1024"
