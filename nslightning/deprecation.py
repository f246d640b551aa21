"""Old spellings kept for one release: they still work, and say what replaces them."""

from __future__ import annotations

import warnings

REMOVED_IN = "0.3"  # the release that drops the old spellings


class NSLightningDeprecationWarning(FutureWarning):
    """An old spelling of an argument, attribute or class that still works until
    :data:`REMOVED_IN`.

    A ``FutureWarning``, so that users of the command line see it (Python hides a plain
    ``DeprecationWarning`` outside ``__main__``).
    """


def warn_renamed(owner: str, old: str, new: str, stacklevel: int = 3) -> None:
    """Warns that ``owner``'s ``old`` is now spelled ``new``.

    Args:
        owner: the class or function, as users name it (``"SkipGramTask"``).
        old: the old spelling, with its value where that helps (``"exclude_window=True"``).
        new: what to write instead (``"accidental_hits='known'"``).
        stacklevel: passed to :func:`warnings.warn`; the default points at the caller's caller.
    """
    warnings.warn(
        f"{owner}: {old} is deprecated and will be removed in nslightning {REMOVED_IN}; "
        f"use {new}.",
        NSLightningDeprecationWarning,
        stacklevel=stacklevel,
    )
