"""Row checks beyond the format: near-duplicates, leaks between splits, and likely secrets.

Near-duplicates are found with MinHash signatures over token shingles and locality-sensitive
hashing (banding): each row is hashed once, and only rows that share a band are compared, so the
work grows with the number of rows, not its square. Secrets are found with patterns for the
credentials that leak into code most often (OpenAI, AWS, GitHub, Slack and Google keys, private
key blocks, passwords written into URLs).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "NearDuplicate",
    "SecretFinding",
    "find_near_duplicates",
    "find_secrets",
    "normalize",
]

#: Tokens per shingle: long enough that unrelated code rarely shares one.
SHINGLE: Final = 5
#: MinHash functions; with 16 bands of 4 rows, pairs above about 0.5 similarity become candidates.
NUM_PERM: Final = 64
BANDS: Final = 16
_PRIME: Final = (1 << 31) - 1  # hashes are below 2**32 and multipliers below 2**31: no overflow
_TOKEN = re.compile(r"\w+|[^\w\s]")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class NearDuplicate:
    """A row whose content nearly repeats an earlier one.

    Attributes:
        source: The later row (``file:line``).
        similar_to: The earlier row it resembles.
        similarity: Estimated Jaccard similarity of their token shingles (0 to 1).
    """

    source: str
    similar_to: str
    similarity: float


@dataclass(frozen=True, slots=True)
class SecretFinding:
    """A likely credential in a row.

    Attributes:
        source: The row (``file:line``).
        kind: What it looks like, e.g. ``"AWS access key"``.
        excerpt: The match with most of it masked, so the report does not spread the secret.
    """

    source: str
    kind: str
    excerpt: str


_SECRET_PATTERNS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    ("private key block", re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("OpenAI API key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}")),
    ("AWS access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})")),
    ("Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}")),
    (
        "password in a URL",
        re.compile(r"\b[a-z][a-z0-9+.\-]{1,20}://[^\s/:@'\"]+:([^\s/@'\"]{3,})@[\w.\-]+"),
    ),
)
# Placeholders people write in examples and docs: not secrets.
_PLACEHOLDERS: Final = frozenset({"password", "pass", "secret", "xxx", "***", "changeme", "pwd"})


def find_secrets(source: str, text: str) -> list[SecretFinding]:
    """Every likely credential in ``text``.

    Args:
        source: The row, for the findings.
        text: The row's text.

    Returns:
        One finding per match, the secret masked.
    """
    findings = []
    for kind, pattern in _SECRET_PATTERNS:
        for match in pattern.finditer(text):
            if match.groups() and _is_placeholder(match.group(1)):
                continue
            findings.append(SecretFinding(source, kind, _mask(match.group(0))))
    return findings


def _is_placeholder(password: str) -> bool:
    lowered = password.lower()
    return lowered in _PLACEHOLDERS or lowered.startswith(("{", "$", "<", "%"))


def _mask(secret: str) -> str:
    keep = min(6, len(secret) // 3)
    return secret[:keep] + "…" + f"({len(secret)} chars)"


def normalize(text: str) -> str:
    """Text compared for leaks: lower case, runs of white space made one space."""
    return _SPACE.sub(" ", text).strip().lower()


def find_near_duplicates(
    rows: Sequence[tuple[str, str]],
    *,
    threshold: float = 0.8,
    exact: Iterable[str] = (),
) -> list[NearDuplicate]:
    """Rows whose token shingles are at least ``threshold`` similar to an earlier row's.

    Args:
        rows: ``(source, text)`` per row, in dataset order.
        threshold: Estimated Jaccard similarity at and above which a row is reported.
        exact: Sources already reported as exact duplicates; they are not reported again.

    Returns:
        One finding per near-duplicate row, naming the earlier row it resembles most among the
        first rows of the LSH buckets it falls in.
    """
    import numpy as np  # with the checks only, never at import time

    count = len(rows)
    if count < 2:
        return []
    rng = np.random.default_rng(20261201)  # fixed: the same data gives the same findings
    mult = rng.integers(1, _PRIME, size=NUM_PERM, dtype=np.uint64)
    add = rng.integers(0, _PRIME, size=NUM_PERM, dtype=np.uint64)
    # One row of 32-bit minima per text (they are below 2**31): 256 bytes a row.
    signatures = np.empty((count, NUM_PERM), dtype=np.uint32)
    for start in range(0, count, 1024):
        batch = [text for _, text in rows[start : start + 1024]]
        signatures[start : start + len(batch)] = _signatures(batch, mult, add)
    best_index = np.full(count, -1, dtype=np.int64)
    best_similarity = np.zeros(count, dtype=np.float32)
    for band in range(BANDS):
        candidates = _band_candidates(signatures, band)
        _keep_better(signatures, candidates, best_index, best_similarity)
    skip = set(exact)
    found = []
    for index in np.flatnonzero(best_similarity >= threshold).tolist():
        source = rows[index][0]
        if source not in skip:
            earlier = rows[int(best_index[index])][0]
            found.append(NearDuplicate(source, earlier, round(float(best_similarity[index]), 2)))
    return found


def _band_candidates(signatures: Any, band: int) -> Any:
    """For each row, the first row whose band of the signature is the same (itself if none)."""
    import numpy as np

    per_band = NUM_PERM // BANDS
    columns = signatures[:, band * per_band : (band + 1) * per_band].astype(np.uint64)
    key = columns[:, 0].copy()
    for column in range(1, per_band):  # one 64-bit key per band; a collision only adds a check
        key = key * np.uint64(0x9E3779B97F4A7C15) ^ columns[:, column]
    order = np.argsort(key, kind="stable")  # equal keys keep row order: the first is the earliest
    ordered = key[order]
    starts = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    first_position = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
    candidates = np.empty(len(order), dtype=np.int64)
    candidates[order] = order[first_position]
    return candidates


def _keep_better(signatures: Any, candidates: Any, best_index: Any, best_similarity: Any) -> None:
    import numpy as np

    rows = np.flatnonzero(candidates != np.arange(len(candidates)))
    for start in range(0, len(rows), 65536):  # bounded memory: 64k rows compared at a time
        chunk = rows[start : start + 65536]
        similar = (signatures[chunk] == signatures[candidates[chunk]]).mean(axis=1)
        better = similar > best_similarity[chunk]
        best_similarity[chunk[better]] = similar[better]
        best_index[chunk[better]] = candidates[chunk[better]]


def _signatures(texts: Sequence[str], mult: Any, add: Any) -> Any:
    """MinHash signatures of a batch of texts, computed together with NumPy."""
    import numpy as np

    hashes: list[int] = []
    starts: list[int] = []
    for text in texts:
        starts.append(len(hashes))
        hashes.extend(_shingle_hashes(text))
    values = np.asarray(hashes, dtype=np.uint64)[:, None]
    permuted = (values * np.asarray(mult)[None, :] + np.asarray(add)[None, :]) % _PRIME
    return np.minimum.reduceat(permuted, np.asarray(starts, dtype=np.int64), axis=0)


def _shingle_hashes(text: str) -> list[int]:
    tokens = _TOKEN.findall(text.lower())
    if len(tokens) <= SHINGLE:
        return [zlib.crc32(" ".join(tokens).encode("utf-8"))]
    return [
        zlib.crc32(" ".join(tokens[i : i + SHINGLE]).encode("utf-8"))
        for i in range(len(tokens) - SHINGLE + 1)
    ]
