"""One way to patch LocalStack: its own ``Patch`` behind a guard that checks the target first.

Every speedup and fidelity fix replaces a LocalStack function (or several that work together)
whose code we read. ``guarded`` applies the replacement with ``localstack.utils.patch.Patch``
(so ``Patch.applied_patches`` lists ours beside LocalStack's) only when every target exists and
still looks as read: its parameters and, where given, fragments of its source. Otherwise it logs
a warning naming the patch and leaves LocalStack's behaviour alone: a newer LocalStack degrades
to stock, never to a patch that no longer fits. Applying twice is a no-op (replacements are
marked).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Target:
    """One attribute a patch replaces, what it must look like first, and its replacement.

    :param new: called as ``new(original, *args, **kwargs)`` (``pass_target``), else as the
        attribute itself (a wrapper that closes over the original it read).
    :param params: the original's parameter names, exactly.
    :param source: fragments the original's source must contain.
    :param check: any further test of the original (or of what else the patch relies on).
    """

    owner: Any  # a class or a module
    name: str
    new: Callable[..., Any]
    params: tuple[str, ...] | None = None
    source: tuple[str, ...] = ()
    check: Callable[[Any], bool] | None = None
    pass_target: bool = True


def guarded(
    owner: Any,
    name: str | None = None,
    new: Callable[..., Any] | None = None,
    *,
    label: str,
    params: tuple[str, ...] | None = None,
    source: tuple[str, ...] = (),
    check: Callable[[Any], bool] | None = None,
    pass_target: bool = True,
) -> bool:
    """Replace ``owner.name`` (a class or module attribute) with ``new`` if it looks as expected.

    ``guarded(owner, name, new, label=..., params=..., ...)`` patches one attribute (the
    keywords are those of ``Target``). ``guarded([Target(...), ...], label=...)`` patches
    several that only work together: every target is checked before any is replaced, and one
    that does not fit skips them all.

    :returns: True if the patch is in place (now or before), False if it was skipped.
    """
    if isinstance(owner, list | tuple):
        targets = list(owner)
    else:
        targets = [Target(owner, name or "", new, params, source, check, pass_target)]
    found = [(target, _original(target)) for target in targets]
    pending = [(target, raw) for target, raw in found if not is_patched(_unwrapped(raw))]
    if not pending:
        return True
    for target, raw in pending:
        original = _unwrapped(raw)
        if original is None:
            LOG.warning(
                "%s: %s.%s is gone (LocalStack changed?); skipped",
                label,
                _name(target.owner),
                target.name,
            )
            return False
        if (
            (target.params is not None and parameters(original) != target.params)
            or (target.source and not source_has(original, *target.source))
            or (target.check is not None and not target.check(original))
        ):
            LOG.warning(
                "%s: %s.%s is not the one this patch was written for (LocalStack changed?); "
                "skipped",
                label,
                _name(target.owner),
                target.name,
            )
            return False
    for target, raw in pending:
        _replace(target, raw, label)
    return True


def _original(target: Target) -> Any:
    """The attribute as stored (a staticmethod stays one), inherited or own; None if absent."""
    if isinstance(target.owner, type):
        return inspect.getattr_static(target.owner, target.name, None)
    return getattr(target.owner, target.name, None)


def _unwrapped(raw: Any) -> Any:
    return raw.__func__ if isinstance(raw, staticmethod) else raw


def _replace(target: Target, raw: Any, label: str) -> None:
    original = _unwrapped(raw)
    if target.pass_target:
        new = target.new

        @functools.wraps(original)
        def replacement(*args: Any, **kwargs: Any) -> Any:
            return new(original, *args, **kwargs)

    else:
        replacement = target.new
    setattr(replacement, MARK, label)
    replacement.__wrapped__ = original
    static = isinstance(raw, staticmethod)
    apply(target.owner, target.name, staticmethod(replacement) if static else replacement)


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
