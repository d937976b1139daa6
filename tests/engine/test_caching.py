"""The backend's one cache (backend/caching.py): LRU by count and by bytes of tensors."""

from __future__ import annotations

import threading

import torch

from dreamwire.backend.caching import BoundedCache, tensor_bytes


def test_least_recently_used_goes_first():
    evictions = []
    cache: BoundedCache[str] = BoundedCache(2, on_evict=lambda: evictions.append(1))
    assert cache.get("a", lambda: "A") == ("A", False)
    assert cache.get("b", lambda: "B") == ("B", False)
    assert cache.get("a", lambda: "never") == ("A", True)  # a is now the newest
    cache.get("c", lambda: "C")
    assert cache.keys() == ["a", "c"] and len(evictions) == 1


def test_room_is_made_before_loading():
    # A GPU holding one model must let it go before the next one loads, not after.
    cache: BoundedCache[str] = BoundedCache(1)
    cache.get("a", lambda: "A")
    seen_while_loading = []
    cache.get("b", lambda: seen_while_loading.append(cache.keys()) or "B")
    assert seen_while_loading == [[]]


def test_byte_budget():
    cache: BoundedCache[torch.Tensor] = BoundedCache(10, max_bytes=3000)
    for i in range(4):
        cache.get(i, lambda: torch.zeros(250))  # 1000 bytes each
    assert cache.keys() == [1, 2, 3] and cache.nbytes() == 3000
    cache.get("big", lambda: torch.zeros(2000))  # 8000 bytes: over budget alone, kept alone
    assert cache.keys() == ["big"]


def test_tensor_bytes_counts_shared_storage_once():
    w = torch.zeros(100)
    module = torch.nn.Linear(10, 10)  # 100 + 10 floats
    assert tensor_bytes(w) == 400
    assert tensor_bytes({"a": w, "b": w[:50], "m": module}) == 400 + 440

    class Holder:
        def __init__(self):
            self.components = {"unet": module}

    assert tensor_bytes(Holder()) == 440


def test_thread_safe_under_concurrent_use():
    cache: BoundedCache[int] = BoundedCache(8)
    errors = []

    def work(offset: int) -> None:
        try:
            for i in range(2000):
                key = (offset + i) % 20
                value, _ = cache.get(key, lambda k=key: k)
                assert value == key
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(cache) <= 8
