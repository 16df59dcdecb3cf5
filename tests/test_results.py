"""Result decoding: bounded gunzip, RunScript JSON and NUL padding; fuzzed with hypothesis."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.errors import ResultError, ResultTooLarge
from commands.results import (
    DownloadedResult,
    decode_stream,
    parse_runscript_output,
    read_runscript_output,
)

LIMIT = 1 << 20


def decode(data: bytes, *, max_bytes: int = LIMIT, chunk: int = 4096) -> tuple[bytes, bool]:
    out = io.BytesIO()
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    decoded = decode_stream(pieces, out, max_bytes=max_bytes)
    assert decoded.size == len(out.getvalue())
    assert decoded.sha256 == hashlib.sha256(out.getvalue()).hexdigest()
    assert decoded.raw_size == len(data)
    return out.getvalue(), decoded.compressed


# --- gzip ------------------------------------------------------------------------------------


def test_plain_bytes_pass_through() -> None:
    assert decode(b"MZ\x90\x00 plain") == (b"MZ\x90\x00 plain", False)


def test_empty_and_one_byte_results() -> None:
    assert decode(b"") == (b"", False)
    assert decode(b"\x1f") == (b"\x1f", False)


def test_gzip_is_decompressed() -> None:
    data = bytes(range(256)) * 1000
    assert decode(gzip.compress(data)) == (data, True)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 65536])
def test_concatenated_members_in_any_chunking(chunk: int) -> None:
    stream = gzip.compress(b"first ") + gzip.compress(b"") + gzip.compress(b"second")
    assert decode(stream, chunk=chunk) == (b"first second", True)


def test_trailing_nul_padding_after_gzip_is_ignored() -> None:
    assert decode(gzip.compress(b"abc") + b"\x00" * 100, chunk=7) == (b"abc", True)


@pytest.mark.parametrize("tail", [b"garbage", b"\x00\x00x", b"\x1f\x8bnot a member"])
def test_data_after_the_gzip_stream_is_refused(tail: bytes) -> None:
    with pytest.raises(ResultError):
        decode(gzip.compress(b"abc") + tail)


@pytest.mark.parametrize("cut", [3, 10, 20, -8, -1])
def test_truncated_gzip_is_refused(cut: int) -> None:
    stream = gzip.compress(b"hello world" * 100)
    with pytest.raises(ResultError):
        decode(stream[:cut])


def test_half_a_second_member_is_truncated() -> None:
    stream = gzip.compress(b"one") + gzip.compress(b"two")[:1]
    with pytest.raises(ResultError, match="truncated"):
        decode(stream)


def test_gzip_bomb_stops_at_the_bound() -> None:
    bomb = gzip.compress(b"\x00" * (50 * LIMIT))  # ~50 KB that inflates to 50 MB
    assert len(bomb) < LIMIT
    with pytest.raises(ResultTooLarge) as caught:
        decode(bomb)
    assert caught.value.limit_bytes == LIMIT


def test_raw_size_is_bounded_too() -> None:
    with pytest.raises(ResultTooLarge):
        decode(b"x" * (LIMIT + 1))


def test_exactly_at_the_bound_is_fine() -> None:
    assert decode(b"x" * 100, max_bytes=100) == (b"x" * 100, False)
    assert decode(gzip.compress(b"y" * 100), max_bytes=100)[0] == b"y" * 100


# --- over the bound: the whole result hashed, at most the bound written ----------------------


def too_large(
    data: bytes, *, max_bytes: int, cap_bytes: int = 1 << 30, chunk: int = 4096
) -> tuple[ResultTooLarge, bytes]:
    """Decode ``data`` expecting ``ResultTooLarge``; the error and what reached ``out``."""
    out = io.BytesIO()
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    with pytest.raises(ResultTooLarge) as caught:
        decode_stream(pieces, out, max_bytes=max_bytes, cap_bytes=cap_bytes)
    assert len(out.getvalue()) <= max_bytes, "more than the bound was kept"
    return caught.value, out.getvalue()


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_sizes_around_the_bound(packed: bool, delta: int) -> None:
    limit = 10_000
    content = bytes(range(256)) * 40  # 10,240 bytes: cut to limit + delta
    content = content[: limit + delta]
    data = gzip.compress(content) if packed else content
    digest = hashlib.sha256(content).hexdigest()
    if delta <= 0:
        assert decode(data, max_bytes=limit, chunk=333) == (content, packed)
        return
    error, kept = too_large(data, max_bytes=limit, chunk=333)
    assert (error.size, error.sha256, error.complete) == (limit + 1, digest, True)
    assert error.limit_bytes == limit
    assert content.startswith(kept)


def test_a_large_gzip_result_is_hashed_whole_in_any_chunking() -> None:
    content = b"".join(hashlib.sha256(str(n).encode()).digest() for n in range(20_000))
    data = gzip.compress(content)  # 640 kB of noise: the compressed stream is over the bound too
    for chunk in (1000, 65536):
        error, _ = too_large(data, max_bytes=50_000, chunk=chunk)
        assert error.size == len(content)
        assert error.sha256 == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize("cut", [-8, -100, 2000])
def test_truncated_gzip_past_the_bound_is_an_error_not_a_size(cut: int) -> None:
    content = b"".join(hashlib.sha256(str(n).encode()).digest() for n in range(2_000))
    data = gzip.compress(content)[:cut]
    out = io.BytesIO()
    with pytest.raises(ResultError, match="truncated") as caught:
        decode_stream([data], out, max_bytes=1000)
    # A SHA-256 of part of the file would mislead: no size or hash is given for it.
    assert not isinstance(caught.value, ResultTooLarge)
    assert len(out.getvalue()) <= 1000


def test_garbage_after_gzip_past_the_bound_is_an_error() -> None:
    with pytest.raises(ResultError, match="after its gzip stream") as caught:
        decode_stream([gzip.compress(b"z" * 5000) + b"junk"], io.BytesIO(), max_bytes=1000)
    assert not isinstance(caught.value, ResultTooLarge)


def test_a_gzip_bomb_stops_at_the_cap_without_a_sha256() -> None:
    bomb = gzip.compress(b"\x00" * (8 * LIMIT))
    error, _ = too_large(bomb, max_bytes=1000, cap_bytes=LIMIT)
    assert (error.size, error.sha256, error.complete) == (LIMIT, None, False)


def test_plain_bytes_past_the_cap_stop_there_too() -> None:
    error, _ = too_large(b"p" * (LIMIT + 10), max_bytes=10, cap_bytes=LIMIT)
    assert (error.size, error.sha256) == (LIMIT, None)


def test_endless_empty_gzip_members_stop_at_the_cap_on_raw_bytes() -> None:
    # Inflates to nothing, forever: only the raw byte count can stop it.
    member = gzip.compress(b"")
    error, _ = too_large(member * 2000, max_bytes=10, cap_bytes=10_000, chunk=len(member))
    assert (error.size, error.sha256) == (0, None)


def test_the_cap_is_never_below_the_bound() -> None:
    data = b"q" * 5000
    assert decode_stream([data], io.BytesIO(), max_bytes=5000, cap_bytes=10).size == 5000


# --- RunScript documents ---------------------------------------------------------------------


def doc(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_runscript_document() -> None:
    output = parse_runscript_output(
        doc(script_name="a.ps1", exit_code=2, script_output="out\n", script_errors="err")
    )
    assert (output.script_name, output.exit_code, output.script_output, output.script_errors) == (
        "a.ps1",
        2,
        "out\n",
        "err",
    )


def test_nul_padding_is_stripped_from_document_and_texts() -> None:
    data = doc(script_name="a.ps1", exit_code=0, script_output="ok\x00\x00", script_errors="\x00")
    output = parse_runscript_output(data + b"\x00" * 64)
    assert (output.script_output, output.script_errors) == ("ok", "")


def test_raw_control_characters_inside_strings_are_tolerated() -> None:
    data = b'{"script_name": "a.ps1", "exit_code": 0, "script_output": "a\tb\x00\x00"}\n\x00'
    assert parse_runscript_output(data).script_output == "a\tb"


def test_missing_and_null_fields() -> None:
    output = parse_runscript_output(b'{"exit_code": null, "script_output": null}')
    assert (output.script_name, output.exit_code, output.script_output) == (None, None, "")


def test_bom_and_utf16() -> None:
    body = json.dumps({"script_output": "héllo"})
    assert parse_runscript_output(b"\xef\xbb\xbf" + body.encode()).script_output == "héllo"
    assert parse_runscript_output(body.encode("utf-16")).script_output == "héllo"


def test_extra_fields_are_kept() -> None:
    output = parse_runscript_output(doc(script_output="x", new_field=1))
    assert output.model_extra == {"new_field": 1}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00",
        b"not json",
        b"[1, 2]",
        b'"text"',
        b'{"exit_code": "zero"}',
        b'{"exit_code": 1.5}',
        b'{"script_output": 7}',
        b"[" * 100_000,
        b'{"a": ' * 50_000,
    ],
)
def test_malformed_documents_are_result_errors(data: bytes) -> None:
    with pytest.raises(ResultError):
        parse_runscript_output(data)


def test_read_runscript_output_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "result"
    path.write_bytes(doc(script_output="from disk"))
    result = DownloadedResult(path, path.stat().st_size, "0" * 64, False)
    assert read_runscript_output(result).script_output == "from disk"
    path.unlink()
    with pytest.raises(ResultError):
        read_runscript_output(result)


# --- fuzz: a correct result, or ResultError / ResultTooLarge; nothing else -------------------

SMALL = 4096


def decode_or_refuse(data: bytes, chunk: int, max_bytes: int = SMALL) -> bytes | None:
    try:
        out = io.BytesIO()
        pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
        decode_stream(pieces, out, max_bytes=max_bytes)
        return out.getvalue()
    except ResultError:  # ResultTooLarge included
        return None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(1, 64))
def test_fuzz_random_bytes(data: bytes, chunk: int) -> None:
    out = decode_or_refuse(data, chunk)
    if out is not None and not data.startswith(b"\x1f\x8b"):
        assert out == data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 9), st.integers(1, 64))
def test_fuzz_gzip_of_random_data(data: bytes, level: int, chunk: int) -> None:
    out = decode_or_refuse(gzip.compress(data, compresslevel=level), chunk)
    if len(data) <= SMALL:
        assert out == data
    else:
        assert out is None


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=2000), st.data())
def test_fuzz_truncated_gzip(data: bytes, draw: st.DataObject) -> None:
    stream = gzip.compress(data)
    cut = draw.draw(st.integers(2, len(stream) - 1))
    assert decode_or_refuse(stream[:cut], draw.draw(st.integers(1, 64))) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(0, 2000), st.binary(min_size=1, max_size=8))
def test_fuzz_corrupted_gzip(data: bytes, where: int, noise: bytes) -> None:
    stream = bytearray(gzip.compress(data))
    at = 2 + where % max(1, len(stream) - 2)
    stream[at : at + len(noise)] = noise
    out = decode_or_refuse(bytes(stream), 17)
    if out is not None:
        assert len(out) <= SMALL  # whatever survived the CRC check, it stayed in bounds


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.integers(1, 2000))
def test_fuzz_raw_deflate_members_never_crash(data: bytes, max_bytes: int) -> None:
    member = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + zlib.compress(data)[2:]
    decode_or_refuse(member, 5, max_bytes)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["script_name", "exit_code", "script_output", "script_errors", "other"]),
        json_values,
    ),
    st.integers(0, 8),
)
def test_fuzz_runscript_documents(fields: dict[str, object], padding: int) -> None:
    data = json.dumps(fields).encode() + b"\x00" * padding
    try:
        output = parse_runscript_output(data)
    except ResultError:
        return
    text = fields.get("script_output")
    if isinstance(text, str):
        assert output.script_output == text.rstrip("\x00")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=500))
def test_fuzz_runscript_random_bytes(data: bytes) -> None:
    with contextlib.suppress(ResultError):
        parse_runscript_output(data)
