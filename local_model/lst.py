"""SageMaker image-classification .lst manifests: `index<TAB>label<TAB>relpath` per line.

The one parser for the format (see
https://docs.aws.amazon.com/sagemaker/latest/dg/image-classification.html, "lst format"): the
trainer, the evaluator, staging and the report all read .lst files through it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class BadLst(ValueError):
    """A .lst line that is not `index<TAB>label<TAB>relpath` with an integer label."""


@dataclass(frozen=True)
class LstEntry:
    """One line of a .lst file: index, label, relative path."""

    index: int
    label: int
    path: str


def parse_lst(text: str, where: str = "<lst>") -> list[LstEntry]:
    """Every entry of a .lst text; ``where`` names the source in the error of a bad line."""
    entries: list[LstEntry] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            if len(parts) != 3 or not parts[2].strip():
                raise ValueError(line)
            label = float(parts[1])  # im2rec writes labels as floats ("1.000000")
            if not label.is_integer():
                raise ValueError(line)
            entries.append(LstEntry(int(parts[0]), int(label), parts[2].strip()))
        except ValueError as err:
            raise BadLst(
                f"{where}:{lineno}: expected index<TAB>label<TAB>path, got {line[:60]!r}"
            ) from err
    return entries


def format_lst(entries: Iterable[LstEntry]) -> str:
    """The text of a .lst file for these entries."""
    return "".join(f"{e.index}\t{e.label}\t{e.path}\n" for e in entries)
