"""Phone timings: the ``phones/<clip>.csv`` format (start_s,end_s,phone) and its validation."""

from __future__ import annotations

import csv
import io
import os
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
    """Read ``start,end,phone`` rows (a header row is optional) and convert symbols to facerl phones.

    ``alphabet`` is one of ``facerl``, ``arpabet``, ``xsampa``, ``ipa``. Gaps between phones become SIL.
    """
    path = Path(path)
    if not path.is_file():
        raise FacerlError(f"phone timing file not found: {path}")
    rows = [r for r in csv.reader(path.read_text(encoding="utf-8").splitlines()) if r and any(c.strip() for c in r)]
    if rows and not _is_number(rows[0][0]):
        rows = rows[1:]  # header
    if not rows:
        raise FacerlError(f"phone timing file is empty: {path}")
    phones: list[Phone] = []
    for line_no, row in enumerate(rows, start=1):
        if len(row) < 3 or not (_is_number(row[0]) and _is_number(row[1])):
            raise FacerlError(f"{path}: row {line_no} is not 'start,end,phone': {','.join(row)}")
        start, end = float(row[0]), float(row[1])
        if end <= start:
            raise FacerlError(f"{path}: row {line_no} ends before it starts ({start} >= {end})")
        try:
            symbol = convert(row[2].strip(), alphabet)
        except UnknownPhoneError as exc:
            raise FacerlError(f"{path}: row {line_no}: {exc}") from None
        if phones and start < phones[-1].end_s - 1e-6:
            raise FacerlError(f"{path}: row {line_no} overlaps the previous phone")
        if phones and start > phones[-1].end_s + 1e-6:
            phones.append(Phone(phones[-1].end_s, start, "SIL"))
        elif not phones and start > 0:
            phones.append(Phone(0.0, start, "SIL"))
        phones.append(Phone(start, end, symbol))
    return phones


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
