"""One bounded cache for everything the backend keeps between jobs: models, VAEs,
ControlNets and adapters, IP-Adapter encoders, upscalers, file inspections.

Least recently used goes first, when either bound is reached: a number of entries, and
(optionally) a budget in bytes of the tensors the entries hold. A backend that serves jobs
around the clock, each naming other files, therefore keeps at most that much; eviction calls
`on_evict` (the engine's: give the accelerator's cached blocks back at once). Thread-safe:
the server thread reads capabilities while the worker loads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

V = TypeVar("V")


def tensor_bytes(value: Any) -> int:
    """Bytes of the tensors `value` holds: a tensor, a module's parameters and buffers, or
    containers, dataclasses and objects with a `components` dict of those (a loaded model).
    Shared storage is counted once."""
    seen: set[int] = set()
    return _walk(value, seen, depth=0)


def _walk(value: Any, seen: set[int], depth: int) -> int:
    if depth > 4 or value is None or id(value) in seen:
        return 0
    seen.add(id(value))
    import torch

    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        if storage.data_ptr() in seen:
            return 0
        seen.add(storage.data_ptr())
        return storage.nbytes()
    if isinstance(value, torch.nn.Module):
        tensors: Iterable[Any] = [*value.parameters(), *value.buffers()]
        return sum(_walk(t, seen, depth + 1) for t in tensors)
    if isinstance(value, dict):
        return sum(_walk(v, seen, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_walk(v, seen, depth + 1) for v in value)
    inner = getattr(value, "__dict__", None)
    return _walk(inner, seen, depth + 1) if isinstance(inner, dict) else 0


class BoundedCache(Generic[V]):
    def __init__(
        self,
        max_items: int,
        max_bytes: int | None = None,
        size_of: Callable[[Any], int] = tensor_bytes,
        on_evict: Callable[[], None] | None = None,
    ):
        self.max_items = max(1, max_items)
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._on_evict = on_evict
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, key: Hashable, load: Callable[[], V]) -> tuple[V, bool]:
        """(value, was_cached): the cached value, or `load()` kept under `key`. Room is made
        before loading, so the old entry's memory is free for the new one."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0], True
            self._evict_to(self.max_items - 1)
        value = load()
        size = self._size_of(value) if self.max_bytes is not None else 0
        with self._lock:
            self._items[key] = (value, size)
            self._items.move_to_end(key)
            self._evict_to(self.max_items, keep=key)
        return value, False

    def _evict_to(self, items: int, keep: Hashable | None = None) -> None:
        evicted = False
        while self._items and (
            len(self._items) > items
            or (self.max_bytes is not None and self.nbytes() > self.max_bytes)
        ):
            oldest = next(iter(self._items))
            if oldest == keep:  # the newest entry stays even when it alone is over budget
                break
            del self._items[oldest]
            evicted = True
        if evicted and self._on_evict is not None:
            self._on_evict()

    def nbytes(self) -> int:
        with self._lock:
            return sum(size for _, size in self._items.values())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
        if self._on_evict is not None:
            self._on_evict()

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
