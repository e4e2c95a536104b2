"""Duplicates, within the job and against what is stored: exact by SHA-256, near by perceptual hash.

- Exact: the SHA-256 of the bytes equals one kept earlier in this job or any stored image's
  (`Image.sha256`, unique, indexed).
- Near: the Hamming distance between 64-bit pHashes is at most `phash_threshold`. Stored images
  are compared when they carry a pHash (the scraper stores one on every image it keeps; uploads and
  generated images have none). The stored hashes are read once per job (an index-only scan of
  `albums_image.phash`) into a numpy array and compared all at once, 1-2 ms per candidate per
  million stored hashes. Two jobs running at the same time do not see each other's new images as
  near duplicates (exact ones still meet at the unique SHA-256).
"""

from __future__ import annotations

import numpy as np

from albums.models import Image


def phash_hex(value: int) -> str:
    return f"{value:016x}"


class DuplicateIndex:
    def __init__(self, threshold: int):
        self.threshold = threshold
        self._sha256: set[str] = set()
        stored = Image.objects.filter(phash__isnull=False).values_list("phash", flat=True).iterator(chunk_size=10_000)
        hashes = np.fromiter((int(h, 16) for h in stored if h), dtype=np.uint64)
        self._size = len(hashes)
        self._hashes = np.zeros(max(1024, 2 * self._size), dtype=np.uint64)
        self._hashes[: self._size] = hashes

    def duplicate_reason(self, sha256: str, phash: int) -> str:
        """The reason to drop the image (duplicate_exact, duplicate_perceptual), or "" when it is new."""
        if sha256 in self._sha256 or Image.objects.filter(sha256=sha256).exists():
            return "duplicate_exact"
        if self._size:
            distances = np.bitwise_count(self._hashes[: self._size] ^ np.uint64(phash))
            if int(distances.min()) <= self.threshold:
                return "duplicate_perceptual"
        return ""

    def add(self, sha256: str, phash: int) -> None:
        self._sha256.add(sha256)
        if self._size == len(self._hashes):
            self._hashes = np.concatenate([self._hashes, np.zeros(len(self._hashes), dtype=np.uint64)])
        self._hashes[self._size] = phash
        self._size += 1
