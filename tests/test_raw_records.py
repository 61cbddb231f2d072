"""The record model of docs/data-quality.md ("Reading") on hand-written bytes, fed in every chunking.

Expectations are written out per case from the documented rule (odd quote counts pair up when the joined
lines have the header's field count, within 100 lines; trailing blank lines are no records), never computed
with the scanner's own helpers; split offsets are checked against a brute-force count of the same bytes.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from core.bucket import Bucket
from core.raw_files import RawFileError, find_raw_key, profile_raw_file, raw_key_in, record_layout
from core.raw_records import scan_records

HEADER = b"id,text,n\n"


def layout_of(data: bytes, chunk: int, fields: int = 3, split_bytes: int = 0, max_lines: int = 100):
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
    return scan_records(pieces, fields, split_bytes, max_lines)


CHUNKS = [1, 2, 3, 7, 64, 1 << 20]


@pytest.mark.parametrize("chunk", CHUNKS)
def test_a_quoted_field_holding_line_breaks_is_one_record(chunk: int) -> None:
    data = HEADER + b'1,"first line\nsecond, with comma\nthird",3\n2,plain,4\n3,"one ""quoted"" word",5\n'
    layout = layout_of(data, chunk)
    assert layout.spans == [(2, 4)]
    assert (layout.physical_lines, layout.last_line, layout.data_records) == (6, 6, 3)


@pytest.mark.parametrize("chunk", CHUNKS)
def test_an_unclosed_quote_costs_one_row_not_the_rows_after_it(chunk: int) -> None:
    # Line 2's quote never closes: the next odd line (5) would give 5 fields, so line 2 stands alone;
    # line 5 then opens a real multi-line field closed on line 6.
    data = HEADER + b'1,"stray,3\n2,b,4\n3,c,5\n4,"real\nfield",6\n5,e,7\n'
    layout = layout_of(data, chunk)
    assert layout.spans == [(5, 6)]
    assert layout.data_records == 5  # lines 2, 3, 4, 5-6, 7


@pytest.mark.parametrize("chunk", CHUNKS)
def test_a_quote_left_open_to_the_end_is_a_record_by_itself(chunk: int) -> None:
    data = HEADER + b'1,"never closed,3\n2,b,4\n3,c,5'
    layout = layout_of(data, chunk)
    assert layout.spans == []
    assert (layout.physical_lines, layout.data_records) == (4, 3)


def test_a_record_spans_at_most_the_limit() -> None:
    body = b'1,"long\n' + b"middle\n" * 3 + b'end",3\n'
    assert layout_of(HEADER + body, 5, max_lines=5).spans == [(2, 6)]  # 5 lines: allowed
    assert layout_of(HEADER + body, 5, max_lines=4).spans == []  # too far: line 2 stands alone


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize(
    ("tail", "blank"),
    [(b"", 0), (b"\n", 1), (b"\r\n\r\n", 2), (b"  \n\t", 2), (b"\n\n \n", 3)],
)
def test_blank_lines_at_the_end_are_not_records(chunk: int, tail: bytes, blank: int) -> None:
    data = HEADER + b"1,a,2\n\n3,c,4\n" + tail  # the blank line 3 is before the last record: it counts
    layout = layout_of(data, chunk)
    assert layout.trailing_blank_lines == blank
    assert layout.last_line == 4 and layout.data_records == 3


@pytest.mark.parametrize("chunk", CHUNKS)
def test_crlf_line_ends_and_a_bom(chunk: int) -> None:
    data = b"\xef\xbb\xbf" + HEADER.replace(b"\n", b"\r\n") + b'1,"a\r\nb",2\r\n2,c,3\r\n'
    layout = layout_of(data, chunk)
    assert layout.header == b"\xef\xbb\xbfid,text,n"
    assert layout.spans == [(2, 3)] and layout.data_records == 2


@pytest.mark.parametrize("split", [1, 5, 16, 100])
def test_first_line_of_every_split_follows_the_newlines_before_it(split: int) -> None:
    data = HEADER + b"".join(f"{i},row {i},{i}\n".encode() for i in range(1, 40))
    layout = layout_of(data, 7, split_bytes=split)
    expected = {0: 1} | {
        start: data[:start].count(b"\n") + 2 for start in range(split, len(data), split)
    }  # the line after the first newline at or after the split start
    assert layout.first_line_of_split() == expected


def test_an_empty_file_and_a_header_only_file() -> None:
    empty = layout_of(b"", 4)
    assert (empty.physical_lines, empty.data_records, empty.header) == (0, 0, b"")
    header_only = layout_of(HEADER, 4)
    assert (header_only.physical_lines, header_only.data_records) == (1, 0)


def test_gzip_files_are_read_as_text_and_found_under_either_name(tmp_path: Path) -> None:
    bucket = Bucket(str(tmp_path))
    text = b"user_id,x\n" + b'u1,"a\nb"\nu2,c\n\n'
    bucket.write_bytes("raw/users.csv.gz", gzip.compress(text[:12]) + gzip.compress(text[12:]))  # 2 members
    assert find_raw_key(bucket, "users") == "raw/users.csv.gz"
    layout = record_layout(bucket, "raw/users.csv.gz", fields=2)
    assert layout.spans == [(2, 3)] and layout.data_records == 2
    profile = profile_raw_file(bucket, "raw/users.csv.gz")
    assert profile.problem is None and profile.header == ["user_id", "x"] and profile.data_rows == 2
    assert profile.preview == [["u1", "a\nb"], ["u2", "c"]]
    assert raw_key_in(bucket, "movies") is None
    bucket.write_bytes("raw/users.csv", text)
    with pytest.raises(RawFileError, match=r"users\.csv\.gz both exist"):
        raw_key_in(bucket, "users")


def test_a_truncated_gzip_file_is_named_as_unreadable(tmp_path: Path) -> None:
    bucket = Bucket(str(tmp_path))
    bucket.write_bytes("raw/movies.csv.gz", gzip.compress(b"movie_id\n" + b"m1\n" * 1000)[:40])
    profile = profile_raw_file(bucket, "raw/movies.csv.gz")
    assert profile.problem is not None and "raw/movies.csv.gz is not a readable gzip file" in profile.problem
