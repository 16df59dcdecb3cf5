"""The picker's library listing: cached for a minute, shown within Slack's option limits."""

from __future__ import annotations

import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.library_cache import LibraryCache, library_options, option_text
from commands.wire import LibraryFile


def lib(name: str, description: str | None = None, params: str | None = None) -> LibraryFile:
    return LibraryFile.model_validate(
        {"fileName": name, "description": description, "parametersDescription": params}
    )


def test_the_listing_is_read_once_per_ttl() -> None:
    now = [0.0]
    loads: list[int] = []

    def load() -> list[LibraryFile]:
        loads.append(1)
        return [lib("b.ps1"), lib("A.ps1")]

    cache = LibraryCache(load, ttl_seconds=60, monotonic=lambda: now[0])
    assert [f.file_name for f in cache.files()] == ["A.ps1", "b.ps1"]
    now[0] = 59
    cache.files()
    assert len(loads) == 1
    now[0] = 61
    cache.files()
    assert len(loads) == 2


def test_a_slow_listing_answers_with_the_last_one_in_time_and_refreshes_after() -> None:
    """Slack drops an options answer after 3 s: a slow Defender gets the last listing
    shown (nothing the first time), and its answer is kept for the next keystroke."""
    now = [0.0]
    release = threading.Event()
    listings = iter([[lib("old.ps1")], [lib("new.ps1")]])

    def load() -> list[LibraryFile]:
        listing = next(listings)
        if listing[0].file_name == "new.ps1":
            release.wait(10)
        return listing

    cache = LibraryCache(load, ttl_seconds=60, monotonic=lambda: now[0])
    assert [f.file_name for f in cache.within(5)] == ["old.ps1"]
    now[0] = 61  # stale: the next read is slow
    assert [f.file_name for f in cache.within(0.05)] == ["old.ps1"]
    release.set()
    assert [f.file_name for f in cache.within(5)] == ["new.ps1"]


def test_option_text_shows_the_descriptions_within_75_characters() -> None:
    assert option_text(lib("a.ps1")) == "a.ps1"
    assert option_text(lib("a.ps1", "Collects\nlogs", "-Days <n>")) == (
        "a.ps1 — Collects logs · -Days <n>"
    )
    long = option_text(lib("a.ps1", "x" * 200))
    assert len(long) == 75 and long.endswith("…")


def test_typing_filters_by_name_or_description_in_any_case_and_at_most_100() -> None:
    files = [lib("Collect.ps1", "Event logs"), lib("dump.ps1", "Memory DUMP"), lib("x" * 151)]
    assert [o["value"] for o in library_options(files, "LOGS")] == ["Collect.ps1"]
    assert [o["value"] for o in library_options(files, "dump")] == ["dump.ps1"]
    # A name no option value can carry (over 150) is left out, not cut.
    assert [o["value"] for o in library_options(files, "")] == ["Collect.ps1", "dump.ps1"]
    many = [lib(f"f{i:03}.ps1") for i in range(150)]
    assert len(library_options(many, "f")) == 100


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.builds(lib, st.text(min_size=1, max_size=200), st.none() | st.text(max_size=300)),
        max_size=30,
    ),
    st.text(max_size=30),
)
def test_options_always_fit_slack(files: list[LibraryFile], typed: str) -> None:
    for option in library_options(files, typed):
        assert 1 <= len(option["text"]["text"]) <= 75
        assert len(option["value"]) <= 150
