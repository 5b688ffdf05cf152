"""``HotConfig``: a mapping replaced as a whole, validated, versioned and instantly rolled back."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from illunare import signals
from illunare._arguments import positive_int
from illunare.exceptions import ConfigError, InvalidArgumentError

__all__ = ["HotConfig"]


@attrs.frozen
class _Version:
    """One version of the configuration; its dict is never changed once made."""

    number: int
    parent: int | None
    values: dict[Any, Any]


class HotConfig:
    """Configuration that changes while the program runs: every version whole, none lost.

    Each ``update()`` merges new values into the current mapping, has the
    validator check the result, and makes it the current version in one
    step: a reader (``get``, ``[]``, ``snapshot()``) always sees one whole
    version, never half of an update, and never waits for a lock. Versions
    are numbered 1, 2, 3 ... (version 1 is ``initial``); a number is never
    reused, and ``rollback()`` returns to an earlier version instantly.

    The mappings given are copied, the values in them are not: treat them
    as read-only, or use immutable ones (str, numbers, tuples, frozensets).

    Updates and rollbacks of one HotConfig run one at a time: the validator
    and the ``config_updated`` receivers run in the updating thread, in
    order, before the next change starts.

    Args:
        initial: the first version, a mapping (or pairs, as ``dict()`` takes).
        validator: called with a read-only view of each new merged mapping
            (and of ``initial``); it refuses a version by raising.
        keep: how many of the most recently created versions are kept for
            ``rollback(to=...)`` (the current one and its parent always are).

    Raises:
        InvalidArgumentError: ``initial`` is not a mapping, ``validator`` not
            callable, or ``keep`` not an int >= 1.
        ConfigError: the validator refused ``initial``.

    """

    # __weakref__: receivers connected for one config (connect_via) leave with it.
    __slots__ = (
        "__weakref__",
        "_current",
        "_keep",
        "_lock",
        "_next",
        "_validator",
        "_values",
        "_versions",
    )

    def __init__(
        self,
        initial: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = (),
        *,
        validator: Callable[[Mapping[Any, Any]], object] | None = None,
        keep: int = 10,
    ) -> None:
        if validator is not None and not callable(validator):
            raise InvalidArgumentError(f"validator must be callable or None, got {validator!r}")
        positive_int("keep", keep)
        try:
            values = dict(initial)
        except (TypeError, ValueError) as error:
            raise InvalidArgumentError(
                f"initial must be a mapping, got {type(initial).__name__}"
            ) from error
        self._validator = validator
        self._keep = keep
        self._validate(values)
        first = _Version(1, None, values)
        self._versions = {1: first}
        self._next = 2
        self._current = first
        # The current version's dict, apart from _current so that get() reads
        # one attribute: a reader takes either the old reference or the new.
        self._values = values
        # Serializes changes (never reads): each is validated against the
        # version it replaces, and its signal goes out before the next starts.
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<HotConfig version={self._current.number} {self._values!r}>"

    @property
    def version(self) -> int:
        """The number of the version served now (1 is the initial one)."""
        return self._current.number

    def get(self, key: Any, default: Any = None) -> Any:
        """The current value of ``key``, or ``default`` when it has none."""
        return self._values.get(key, default)

    def __getitem__(self, key: Any) -> Any:
        """The current value of ``key``; ``KeyError`` when it has none."""
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        return key in self._values

    # Iterating the live config could mix versions (the keys of one, the
    # values of the next): iterate over snapshot() instead.
    __iter__ = None

    def snapshot(self) -> Mapping[Any, Any]:
        """A read-only mapping of the current version: it never changes, whatever updates follow."""
        return MappingProxyType(self._current.values)

    def update(self, values: Mapping[Any, Any]) -> int:
        """Merge ``values`` into the current mapping as a new version; returns its number.

        The validator is called with a read-only view of the merged mapping
        and refuses it by raising. An update that changes nothing (the merged
        mapping equals the current one) makes no version: it returns the
        current number, without calling the validator or sending a signal.
        Otherwise ``signals.config_updated`` is sent once readers see the
        new version.

        Raises:
            ConfigError: the validator refused it (its exception is the
                ``__cause__``); nothing changed.
            InvalidArgumentError: ``values`` is not a mapping.

        """
        if not isinstance(values, Mapping):
            raise InvalidArgumentError(f"values must be a mapping, got {type(values).__name__}")
        with self._lock:
            current = self._current
            merged = {**current.values, **values}
            if merged == current.values:
                return current.number
            self._validate(merged)
            version = _Version(self._next, current.number, merged)
            self._next += 1
            self._versions[version.number] = version
            self._switch(current, version, rollback=False)
            return version.number

    def rollback(self, to: int | None = None) -> int:
        """Serve an earlier version again: the current one's parent, or version ``to``.

        The parent is the version that was current when the current one was
        made. Instant: the validator is not called again. Returns the number
        now current; rolling back to the current version changes nothing.
        ``signals.config_updated`` is sent (``rollback=True``).

        Raises:
            ConfigError: no parent (version 1), or ``to`` was evicted from
                the history or never existed; nothing changed.
            InvalidArgumentError: ``to`` is not an int or None.

        """
        if to is not None and (isinstance(to, bool) or not isinstance(to, int)):
            raise InvalidArgumentError(f"to must be a version number (int) or None, got {to!r}")
        with self._lock:
            current = self._current
            number = current.parent if to is None else to
            if number is None:
                raise ConfigError(f"version {current.number} has no parent to roll back to")
            target = self._versions.get(number)
            if target is None:
                known = 1 <= number < self._next
                raise ConfigError(
                    f"version {number} "
                    + ("was evicted from the history" if known else "does not exist")
                )
            if target is not current:
                self._switch(current, target, rollback=True)
            return number

    def _refusals(self, updates: Iterable[Mapping[Any, Any]]) -> list[ConfigError | None]:
        """What the validator says of ``updates`` merged in turn into the current version.

        As ``update()`` would, changing nothing: None for each update accepted
        (or changing nothing), else its ConfigError. A refused update is left
        out of the mapping the next ones are merged into. Under the lock, so
        the validator still runs for one change or check at a time.
        """
        refusals: list[ConfigError | None] = []
        with self._lock:
            values = self._current.values
            for update in updates:
                merged = {**values, **update}
                refusal = None
                if merged != values:
                    try:
                        self._validate(merged)
                    except ConfigError as error:
                        refusal = error
                    else:
                        values = merged
                refusals.append(refusal)
        return refusals

    def _validate(self, values: dict[Any, Any]) -> None:
        """Have the validator check ``values``; ConfigError if it raises."""
        if self._validator is None:
            return
        try:
            self._validator(MappingProxyType(values))
        except Exception as error:
            raise ConfigError(f"the validator refused the config: {error!r}") from error

    def _switch(self, leaving: _Version, version: _Version, *, rollback: bool) -> None:
        """Serve ``version`` from now on, release what the history no longer keeps, tell receivers.

        Under the lock.
        """
        self._current = version
        self._values = version.values
        spared = {version.number, version.parent}
        numbers = list(self._versions)  # in order of creation
        for number in numbers[: max(len(numbers) - self._keep, 0)]:
            if number not in spared:
                del self._versions[number]
        if signals.config_updated.receivers:
            old, new = leaving.values, version.values
            changed = frozenset(
                key
                for key in old.keys() | new.keys()
                if key not in old or key not in new or old[key] != new[key]
            )
            signals._send(  # the library's own send, each receiver isolated
                signals.config_updated,
                self,
                version=version.number,
                previous=leaving.number,
                values=MappingProxyType(new),
                changed=changed,
                rollback=rollback,
            )
