"""The limits on a dataset source, checked while it is listed or streamed: how many entries, how
deep a path, how many bytes in all and (archives) how many bytes per byte of the archive.

One owner for the four limits and their messages; `settings` says what each defaults to and why.
Each check runs as an entry or a block of bytes arrives, before what it guards is held, so a
source built to exhaust memory (a million empty files, paths a thousand folders deep, a zip bomb)
is refused with a sentence naming the limit and its setting. This module reads nothing itself.
"""

from __future__ import annotations

import dataclasses

from cnn_core import settings
from cnn_core.errors import DataError

# Why a floor: a ratio says nothing about a small archive (a few flat-colour test images compress
# a hundredfold), and an archive that unpacks to less than this cannot hurt whatever its ratio.
RATIO_FLOOR = 64 * 2**20
SHOWN_NAME = 80  # characters of an entry's path quoted in a message


@dataclasses.dataclass(frozen=True)
class Limits:
    files: int  # entries, files and folders alike
    depth: int  # parts in one entry's path
    bytes: int  # the files' bytes, uncompressed
    ratio: float  # an archive's uncompressed bytes per byte of the archive

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            files=settings.max_dataset_files(),
            depth=settings.max_path_depth(),
            bytes=settings.max_dataset_bytes(),
            ratio=settings.max_compression_ratio(),
        )


class Meter:
    """Counts one source's entries and bytes as they come; refuses the first past a limit."""

    def __init__(self, where: str, *, kind: str, limits: Limits | None = None) -> None:
        self.where = where
        self.kind = kind  # "archive" or "folder", as messages name the source
        self.limits = limits or Limits.from_settings()
        self.entries = 0
        self.unpacked = 0  # bytes of files so far (archives: also their headers)

    def expect(self, count: int) -> None:
        """A source that says how many entries it has (a zip's last record): refused up front."""
        if count > self.limits.files:
            raise self._too_many()

    def entry(self, name: str) -> None:
        """One more entry, named by its path inside the source ("/"-separated)."""
        self.entries += 1
        if self.entries > self.limits.files:
            raise self._too_many()
        depth = len([part for part in name.replace("\\", "/").split("/") if part])
        if depth > self.limits.depth:
            shown = name if len(name) <= SHOWN_NAME else f"{name[:SHOWN_NAME]}..."
            raise self._refusal(
                f"has an entry {depth} levels deep ({shown}), deeper than {self.limits.depth}",
                "CNN_CORE_MAX_PATH_DEPTH",
                "give the dataset a flatter layout",
            )

    def add(self, count: int) -> None:
        """`count` more bytes of files, as they are read."""
        self.reach(self.unpacked + count)

    def reach(self, total: int, *, packed: int | None = None) -> None:
        """The bytes so far are now `total` (uncompressed), from `packed` bytes of the archive."""
        self.check(total, packed=packed)
        self.unpacked = max(self.unpacked, total)

    def check(self, total: int, *, packed: int | None = None) -> None:
        """Refuse a total (so far, or declared ahead) past the byte or the ratio limit."""
        if total > self.limits.bytes:
            raise self._refusal(
                f"{'unpacks' if self.kind == 'archive' else 'adds up'} to more than "
                f"{self.limits.bytes / 1e9:g} GB",
                "CNN_CORE_MAX_DATASET_GB",
                "use a smaller dataset",
            )
        if packed and total > RATIO_FLOOR and total > self.limits.ratio * packed:
            raise self._refusal(
                f"unpacks to more than {self.limits.ratio:g} times its own size, as a "
                "compression bomb does",
                "CNN_CORE_MAX_COMPRESSION_RATIO",
                "raise the limit only if it really is a dataset",
            )

    def _too_many(self) -> DataError:
        return self._refusal(
            f"has more than {self.limits.files:,} entries",
            "CNN_CORE_MAX_DATASET_FILES",
            "use a smaller dataset",
        )

    def _refusal(self, what: str, setting: str, fix: str) -> DataError:
        how = fix if fix.startswith("raise") else f"raise the limit or {fix}"
        return DataError(f"The {self.kind} {self.where} {what} (the limit, {setting}); {how}.")
