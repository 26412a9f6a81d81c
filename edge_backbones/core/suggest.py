"""Did-you-mean: the known names closest to a mistyped one.

The one suggestion rule for preset names, export options, recipe sections
and layer names.
"""

from collections.abc import Iterable

__all__ = ["did_you_mean", "suggest"]

# characters one is typed or read for another (o/0, l/1, ...), and s/z
# (-ise/-ize spellings: `modez` is `modes`, not `model`): a cheap edit
_LOOKALIKES = {frozenset(p) for p in ("o0", "O0", "l1", "I1", "i1", "s5", "sz")}
_LOOKALIKE_COST = 0.25


def _edit_distance(typed: str, name: str) -> float:
    """Levenshtein distance where a look-alike substitution costs less."""
    previous = [float(j) for j in range(len(name) + 1)]
    for i, a in enumerate(typed, 1):
        current = [float(i)]
        for j, b in enumerate(name, 1):
            swap = 0.0 if a == b else 1.0
            if frozenset((a, b)) in _LOOKALIKES:
                swap = _LOOKALIKE_COST
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + swap)
            )
        previous = current
    return previous[-1]


def suggest(typed: str, names: Iterable[str], limit: int = 3) -> list[str]:
    """The names closest to `typed` (at most `limit`), nearest first.

    Edit distance with look-alike characters (`mit_bo` is `mit_b0`, not
    `mit_b5`) beats difflib's ratio, which ties every `mit_b*` here.
    """
    scored = sorted((_edit_distance(typed, n), n) for n in names)
    if not scored:
        return []
    best = scored[0][0]
    cutoff = min(best + 0.5, max(1.0, len(typed) / 3))
    return [name for score, name in scored[:limit] if score <= cutoff]


def did_you_mean(typed: str, names: Iterable[str]) -> str:
    """` (did you mean 'modes'?)` for the closest of `names`, or ""."""
    close = suggest(typed, names, limit=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
