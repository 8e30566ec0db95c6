"""One way to patch LocalStack: its own ``Patch`` behind a guard that checks the target first.

Every speedup and fidelity fix replaces a LocalStack function whose code we read. ``guarded``
applies the replacement with ``localstack.utils.patch.Patch`` (so ``Patch.applied_patches``
lists ours beside LocalStack's) only when the target exists and still looks as read: its
parameters and, where given, fragments of its source. Otherwise it logs a warning naming the
patch and leaves LocalStack's behaviour alone: a newer LocalStack degrades to stock, never to a
patch that no longer fits. Applying twice is a no-op (the replacement is marked).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger(__name__)

MARK = "__scones_patch__"  # set on every replacement: the patch's label


def parameters(function: Any) -> tuple[str, ...]:
    """The parameter names of ``function``; () if it has no inspectable signature."""
    try:
        return tuple(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return ()


def source_has(function: Any, *fragments: str) -> bool:
    """Whether ``function``'s source contains every fragment (False if it has no source)."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    return all(fragment in source for fragment in fragments)


def is_patched(function: Any) -> bool:
    return bool(getattr(function, MARK, False))


def guarded(
    owner: Any,
    name: str,
    new: Callable[..., Any],
    *,
    label: str,
    params: tuple[str, ...] | None = None,
    source: tuple[str, ...] = (),
    check: Callable[[Any], bool] | None = None,
    pass_target: bool = True,
) -> bool:
    """Replace ``owner.name`` (a class or module attribute) with ``new`` if it looks as expected.

    :param new: called as ``new(original, *args, **kwargs)`` (``pass_target``), else as the
        attribute itself.
    :param params: the original's parameter names, exactly.
    :param source: fragments the original's source must contain.
    :param check: any further test of the original.
    :returns: True if the patch is in place (now or before), False if it was skipped.
    """
    raw = vars(owner).get(name) if isinstance(owner, type) else getattr(owner, name, None)
    static = isinstance(raw, staticmethod)
    original = raw.__func__ if static else raw
    if original is None:
        LOG.warning("%s: %s.%s is gone (LocalStack changed?); skipped", label, _name(owner), name)
        return False
    if is_patched(original):
        return True
    if (
        (params is not None and parameters(original) != params)
        or (source and not source_has(original, *source))
        or (check is not None and not check(original))
    ):
        LOG.warning(
            "%s: %s.%s is not the one this patch was written for (LocalStack changed?); skipped",
            label,
            _name(owner),
            name,
        )
        return False
    if pass_target:

        @functools.wraps(original)
        def replacement(*args: Any, **kwargs: Any) -> Any:
            return new(original, *args, **kwargs)

    else:
        replacement = new
    setattr(replacement, MARK, label)
    replacement.__wrapped__ = original
    apply(owner, name, staticmethod(replacement) if static else replacement)
    return True


def rebind(prefix: str, name: str, original: Any, replacement: Any) -> list[str]:
    """Point every loaded module under ``prefix`` that bound ``name`` to ``original`` at import
    (``from x import name``) to ``replacement``; the modules changed."""
    import sys

    changed = []
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith(prefix) and getattr(module, name, None) is original:
            apply(module, name, replacement)
            changed.append(module_name)
    return changed


def apply(owner: Any, name: str, new: Any) -> None:
    """Set ``owner.name`` to ``new`` through LocalStack's ``Patch`` (listed in its bookkeeping)."""
    from localstack.utils.patch import Patch

    Patch(owner, name, new).apply()


def _name(owner: Any) -> str:
    return getattr(owner, "__qualname__", None) or getattr(owner, "__name__", repr(owner))
