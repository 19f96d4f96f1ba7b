"""``Range`` and ``Content-Range`` headers (``moorage.oci.ranges``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moorage.oci.errors import RangeInvalid
from moorage.oci.ranges import parse_content_range, parse_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=0-9", 10, (0, 9)),
        ("bytes=2-5", 10, (2, 5)),
        ("bytes=5-", 10, (5, 9)),
        ("bytes=0-99", 10, (0, 9)),  # end clamped to the resource
        ("bytes=-3", 10, (7, 9)),  # suffix: the last three bytes
        ("bytes=-100", 10, (0, 9)),
        ("bytes=9-9", 10, (9, 9)),
        ("  bytes=1-2  ", 10, (1, 2)),
    ],
)
def test_satisfiable_ranges(header: str, size: int, expected: tuple[int, int]) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    "header",
    ["", "bytes=", "bytes=-", "items=0-1", "bytes=0-1,3-4", "bytes=a-b", "0-1", "bytes=5-3", "bytes = 0-1"],
)
def test_ignored_ranges_mean_whole_resource(header: str) -> None:
    assert parse_range(header, 10) is None


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=10-", 10), ("bytes=10-20", 10), ("bytes=-0", 10), ("bytes=0-", 0)]
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(RangeInvalid) as info:
        parse_range(header, size)
    assert info.value.code == "RANGE_INVALID"
    assert info.value.detail == {"size": size}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0-99", (0, 99)),
        ("100-199", (100, 199)),
        ("bytes 0-0/1", (0, 0)),
        ("bytes=5-9", (5, 9)),
        ("bytes 5-9/*", (5, 9)),
        ("0-9/10", (0, 9)),
    ],
)
def test_content_ranges(header: str, expected: tuple[int, int]) -> None:
    assert parse_content_range(header) == expected


@pytest.mark.parametrize(
    "header", ["", "-", "0-", "-9", "a-b", "9-0", "bytes 0-9/x", "0-9-10", "0 - 9", "1e3-2e3"]
)
def test_malformed_content_ranges(header: str) -> None:
    with pytest.raises(RangeInvalid) as info:
        parse_content_range(header)
    assert "Content-Range" in info.value.message


# -- properties ------------------------------------------------------------------------
@given(st.integers(1, 10_000), st.data())
def test_satisfiable_range_lies_inside_resource(size: int, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start, size * 2))
    first, last = parse_range(f"bytes={start}-{end}", size)  # type: ignore[misc]
    assert (first, last) == (start, min(end, size - 1))
    assert 0 <= first <= last < size


@given(st.integers(1, 10_000), st.integers(1, 20_000))
def test_suffix_range_is_the_tail(size: int, suffix: int) -> None:
    first, last = parse_range(f"bytes=-{suffix}", size)  # type: ignore[misc]
    assert last == size - 1
    assert last - first + 1 == min(size, suffix)


@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_start_past_end_is_416(size: int, extra: int) -> None:
    with pytest.raises(RangeInvalid):
        parse_range(f"bytes={size + extra}-", size)


@given(st.integers(0, 2**62), st.integers(0, 2**62), st.sampled_from(["", "bytes ", "bytes="]), st.booleans())
def test_content_range_round_trip(a: int, b: int, prefix: str, total: bool) -> None:
    start, end = min(a, b), max(a, b)
    header = f"{prefix}{start}-{end}" + (f"/{end + 1}" if total else "")
    assert parse_content_range(header) == (start, end)


@given(st.text(max_size=40))
def test_parsers_never_crash(header: str) -> None:
    try:
        span = parse_range(header, 100)
    except RangeInvalid:
        pass
    else:
        assert span is None or 0 <= span[0] <= span[1] < 100
    try:
        start, end = parse_content_range(header)
    except RangeInvalid:
        pass
    else:
        assert 0 <= start <= end
