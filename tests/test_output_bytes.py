"""The program's output reaches the terminal as the bytes it wrote (issue 7, item 4)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from spotctl.cli.follow import write_log

from conftest import Spot, launched_id

ALL_BYTES = bytes(range(256)) * 64  # 16 KiB, every byte value, most of it not UTF-8
EURO = "€".encode()  # 3 bytes, split across two writes below


def _program(tmp_path: Path) -> tuple[str, bytes]:
    """A task whose run writes every byte value, then a character in two pieces with a sleep
    between (so `logs` following the job reads the pieces in different polls)."""
    script = tmp_path / "emit.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        out = sys.stdout.buffer
        out.write({ALL_BYTES!r}); out.flush()
        out.write(b"\\nsplit:" + {EURO[:1]!r}); out.flush()
        time.sleep(1.5)
        out.write({EURO[1:]!r} + b"\\n"); out.flush()
    """))
    expected = ALL_BYTES + b"\nsplit:" + EURO + b"\n"
    return f"python3 {script}", expected


def test_logs_print_the_programs_exact_bytes(spot_clean: Spot, tmp_path: Path) -> None:
    run, expected = _program(tmp_path)
    job_id = launched_id(spot_clean.run("launch", "-y", "-d", "-n", "bytes", run).stderr)
    following = spot_clean.run("logs", str(job_id))  # follows while the program still writes
    assert following.exit_code == 0, following.stderr
    assert following.stdout_bytes == expected
    again = spot_clean.run("logs", "--no-follow", str(job_id))
    assert again.exit_code == 0 and again.stdout_bytes == expected


def test_launch_follows_with_the_exact_bytes(spot_clean: Spot, tmp_path: Path) -> None:
    run, expected = _program(tmp_path)
    result = spot_clean.run("launch", "-y", "-n", "bytes-launch", run)
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == expected


def test_other_nodes_lines_get_one_prefix_even_in_pieces(capfdbinary) -> None:
    """A worker node's line that arrives in two reads is still one prefixed line."""
    state = write_log(1, b"hal")
    state = write_log(1, b"f\xff\nnext\n", state)
    assert state is True
    assert capfdbinary.readouterr().out == b"(node-1) half\xff\n(node-1) next\n"
