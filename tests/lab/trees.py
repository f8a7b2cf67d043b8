"""A directory tree with the awkward cases a bucket store must carry (empty files, spaces and
plus signs in names, hidden dirs, a symlink, a dangling one), and how to read one back."""

from __future__ import annotations

import os
from pathlib import Path


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "top.txt": b"top",
        "empty": b"",
        "a/b/deep.bin": os.urandom(3000),
        "a/with space+plus.txt": b"odd name",
        ".hidden/x": b"hidden too",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "link-to-top").symlink_to("top.txt")
    (root / "dangling").symlink_to("nowhere")
    return {**files, "link-to-top": b"top"}


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
