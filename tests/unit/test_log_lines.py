"""Reading a log that is still being written: only whole lines come out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codetune_studio.services.history import LogLines

if TYPE_CHECKING:
    from pathlib import Path


def test_a_line_written_in_pieces_comes_out_once_whole_and_the_last_one_at_the_end(
    tmp_path: Path,
) -> None:
    path = tmp_path / "worker.log"
    path.write_bytes(b"")
    with path.open("rb") as handle, path.open("ab", buffering=0) as writer:
        lines = LogLines(handle, chunk_bytes=4)  # pieces smaller than a line, too
        seen: list[list[str]] = []
        # "é" is two bytes in UTF-8: the first write ends between them.
        for piece in [b"first line\nsecond caf\xc3", b"\xa9 line\r\nthi", b"rd", b" line"]:
            writer.write(piece)
            seen.append(list(lines.read()))
        seen.append(list(lines.read(final=True)))

    assert seen == [["first line"], ["second café line"], [], [], ["third line"]]


def test_nothing_new_reads_as_no_lines(tmp_path: Path) -> None:
    path = tmp_path / "worker.log"
    path.write_bytes(b"done\n")
    with path.open("rb") as handle:
        lines = LogLines(handle)
        assert list(lines.read()) == ["done"]
        assert list(lines.read()) == []
        assert list(lines.read(final=True)) == []
