"""Phone timings: the ``phones/<clip>.csv`` format (start_s,end_s,phone) and its validation."""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from facerl.errors import FacerlError
from facerl.speech.phoneset import UnknownPhoneError, convert
from facerl.utils.io import save_text


@dataclass(frozen=True)
class Phone:
    start_s: float
    end_s: float
    phone: str  # canonical facerl symbol: ARPAbet without stress digits, or SIL

    @property
    def centre_s(self) -> float:
        return 0.5 * (self.start_s + self.end_s)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def write_phone_csv(path: str | os.PathLike, phones: list[Phone]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["start_s", "end_s", "phone"])
    for p in phones:
        writer.writerow([f"{p.start_s:.6f}", f"{p.end_s:.6f}", p.phone])
    save_text(path, buf.getvalue())


def read_phone_csv(path: str | os.PathLike, alphabet: str = "facerl") -> list[Phone]:
    """Read ``start,end,phone`` rows and convert symbols to facerl phones.

    Fields may be separated by commas, tabs, semicolons or spaces; a first row naming the columns
    (e.g. ``start,end,phone``) is skipped. ``alphabet`` is one of ``facerl``, ``arpabet``, ``xsampa``,
    ``ipa``. Gaps between phones become SIL. Errors name the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FacerlError(f"phone timing file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")  # tolerate a byte-order mark
    except UnicodeDecodeError:
        raise FacerlError(f"{path} is not UTF-8 text") from None
    lines = [(n, _FIELDS.split(line.strip(), maxsplit=2)) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip()]
    if lines and _is_header(lines[0][1]):
        lines = lines[1:]
    if not lines:
        raise FacerlError(f"phone timing file has no phones: {path}")
    phones: list[Phone] = []
    for line_no, row in lines:
        if len(row) < 3 or not (_is_time(row[0]) and _is_time(row[1])):
            raise FacerlError(f"{path}: line {line_no} is not 'start,end,phone' with times in seconds: "
                              f"{' '.join(row)!r}")
        start, end = float(row[0]), float(row[1])
        if end <= start:
            raise FacerlError(f"{path}: line {line_no} ends before it starts ({start} >= {end})")
        try:
            symbol = convert(row[2].strip().strip('"'), alphabet)
        except UnknownPhoneError as exc:
            raise FacerlError(f"{path}: line {line_no}: {exc}") from None
        if phones and start < phones[-1].end_s - 1e-6:
            raise FacerlError(f"{path}: line {line_no} overlaps the previous phone")
        if phones and start > phones[-1].end_s + 1e-6:
            phones.append(Phone(phones[-1].end_s, start, "SIL"))
        elif not phones and start > 0:
            phones.append(Phone(0.0, start, "SIL"))
        phones.append(Phone(start, end, symbol))
    return phones


def pad_to(phones: list[Phone], duration_s: float) -> list[Phone]:
    """Fill the time between the last phone and the end of the audio with SIL."""
    if phones and duration_s > phones[-1].end_s + 1e-6:
        return phones + [Phone(phones[-1].end_s, duration_s, "SIL")]
    return phones


_FIELDS = re.compile(r"\s*[,;\t]\s*|\s+")


def _is_header(row: list[str]) -> bool:
    """A first row whose time fields are column names (words without digits: start, end_s, "Start (s)"),
    not numbers. A mistyped time such as ``O.1`` is not a name: it is reported as a bad line, not skipped."""
    return len(row) >= 2 and all(re.search(r"[A-Za-z]", f) and not re.search(r"\d", f) for f in row[:2])


def _is_time(text: str) -> bool:
    """A finite, non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value >= 0.0
