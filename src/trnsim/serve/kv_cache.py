"""A paged KV cache: fixed-size blocks, per-sequence block tables, and optional prefix caching.

Every block is in exactly one of three places: the free list, held by sequences (refcount > 0), or cached
(refcount 0 but still holding a known prefix, kept in LRU order and reclaimed when the free list is
empty). With prefix caching, a sequence names the content of its leading full blocks with hashable keys
(`prefix_keys`); a block whose key is already cached is shared (refcount + 1) instead of recomputed.
Blocks become shareable only once their KV is computed (`commit`), as in vLLM's automatic prefix caching.
Allocation never exceeds the capacity: a request that does not fit is refused (False), never overbooked.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence

from trnsim.serve.errors import ServeError, ServeInternalError


class PagedKVCache:
    def __init__(self, num_blocks: int, block_tokens: int = 16, prefix_caching: bool = False) -> None:
        if num_blocks < 1 or block_tokens < 1:
            raise ServeError(f"a KV cache needs >= 1 block of >= 1 token, got {num_blocks} x {block_tokens}")
        self.num_blocks = num_blocks
        self.block_tokens = block_tokens
        self.prefix_caching = prefix_caching
        self._free: list[int] = list(range(num_blocks - 1, -1, -1))  # pop() hands out low ids first
        self._refs = [0] * num_blocks
        self._key_of: list[Hashable | None] = [None] * num_blocks
        self._by_key: dict[Hashable, int] = {}
        self._lru: OrderedDict[int, None] = OrderedDict()  # cached blocks, least recently freed first
        self._tables: dict[int, list[int]] = {}

    # --- sizes -------------------------------------------------------------------------------------------
    @property
    def free_blocks(self) -> int:
        """Blocks a new allocation may take: free plus cached-but-unreferenced ones."""
        return len(self._free) + len(self._lru)

    def block_key(self, block: int) -> Hashable | None:
        """The prefix key a block is registered under (None: private content)."""
        return self._key_of[block]

    def block_with_key(self, key: Hashable) -> int | None:
        """The cached block holding this prefix key, if any."""
        return self._by_key.get(key)

    def refcount(self, block: int) -> int:
        """How many sequences hold the block."""
        if self.prefix_caching:
            return self._refs[block]
        return sum(block in t for t in self._tables.values())

    @property
    def used_blocks(self) -> int:
        """Blocks referenced by at least one sequence."""
        return self.num_blocks - self.free_blocks

    @property
    def cached_blocks(self) -> int:
        return len(self._lru)

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_tokens)

    def blocks_of(self, seq: int) -> int:
        return len(self._tables.get(seq, ()))

    def table(self, seq: int) -> list[int]:
        return list(self._tables.get(seq, ()))

    # --- prefix lookup -----------------------------------------------------------------------------------
    def _hits(self, prefix_keys: Sequence[Hashable], tokens: int | None = None) -> list[int]:
        hits: list[int] = []
        if self.prefix_caching:
            if tokens is not None:
                prefix_keys = prefix_keys[: self.blocks_for(tokens)]
            for key in prefix_keys:
                block = self._by_key.get(key)
                if block is None:
                    break
                hits.append(block)
        return hits

    def cached_prefix_blocks(self, prefix_keys: Sequence[Hashable]) -> int:
        """How many leading blocks of these keys are cached now (no side effects)."""
        return len(self._hits(prefix_keys))

    def can_allocate(self, tokens: int, prefix_keys: Sequence[Hashable] = (), keep_free: int = 0) -> bool:
        """Whether a new sequence of `tokens` tokens fits and still leaves `keep_free` blocks free."""
        hits = self._hits(prefix_keys, tokens)
        # A hit on a cached (refcount 0) block takes it out of the reclaimable pool too.
        in_use_hits = sum(1 for b in hits if self._refs[b] > 0)  # hits exist only with prefix caching
        return self.blocks_for(tokens) - in_use_hits + keep_free <= self.free_blocks

    # --- allocation --------------------------------------------------------------------------------------
    def _take_blocks(self, n: int) -> list[int]:
        """n blocks from the free list, then by evicting the least recently used cached blocks."""
        free = self._free
        if n <= len(free):
            cut = len(free) - n
            taken = free[cut:]
            del free[cut:]
        else:
            taken = free[:]
            free.clear()
            for _ in range(n - len(taken)):
                block, _ = self._lru.popitem(last=False)
                key = self._key_of[block]
                self._key_of[block] = None
                del self._by_key[key]
                taken.append(block)
        if self.prefix_caching:  # without it every block has one owner and needs no refcount
            refs = self._refs
            for block in taken:
                refs[block] = 1
        return taken

    def allocate(self, seq: int, tokens: int, prefix_keys: Sequence[Hashable] = ()) -> int:
        """Give a new sequence blocks for `tokens` tokens; returns how many leading blocks were prefix hits.

        Call `can_allocate` first: allocating without room is a simulator bug.
        """
        if seq in self._tables:
            raise ServeInternalError(f"sequence {seq} allocated twice in the KV cache")
        if not self.can_allocate(tokens, prefix_keys):
            raise ServeInternalError(f"KV allocation of {tokens} tokens without room ({self.free_blocks} blocks free)")
        hits = self._hits(prefix_keys, tokens)
        for block in hits:
            if self._refs[block] == 0:
                del self._lru[block]
            self._refs[block] += 1
        self._tables[seq] = hits + self._take_blocks(self.blocks_for(tokens) - len(hits))
        return len(hits)

    def ensure(self, seq: int, tokens: int) -> bool:
        """Grow a sequence's table to hold `tokens` tokens. False (and no change) when blocks run out."""
        table = self._tables[seq]
        need = -(-tokens // self.block_tokens) - len(table)
        if need <= 0:
            return True
        if need > len(self._free) + len(self._lru):
            return False
        table.extend(self._take_blocks(need))
        return True

    def commit(self, seq: int, computed_tokens: int, prefix_keys: Sequence[Hashable]) -> None:
        """Make the sequence's keyed full blocks within its first `computed_tokens` tokens shareable."""
        if not self.prefix_caching:
            return
        table = self._tables[seq]
        full = min(computed_tokens // self.block_tokens, len(prefix_keys), len(table))
        for i in range(full):
            key = prefix_keys[i]
            if key not in self._by_key and self._key_of[table[i]] is None:
                self._by_key[key] = table[i]
                self._key_of[table[i]] = key

    def free(self, seq: int) -> None:
        """Release a sequence's blocks; keyed ones stay cached until their space is needed."""
        table = self._tables.pop(seq)
        if not self.prefix_caching:
            self._free.extend(table)
            return
        # Deepest blocks first into the LRU, so a prefix is evicted from its end and its start stays usable.
        for block in reversed(table):
            self._refs[block] -= 1
            if self._refs[block] == 0:
                if self._key_of[block] is not None:
                    self._lru[block] = None
                else:
                    self._free.append(block)

    # --- checks ------------------------------------------------------------------------------------------
    def check(self) -> None:
        """Recount every block from the block tables; raise ServeInternalError on any inconsistency."""
        refs = [0] * self.num_blocks
        for table in self._tables.values():
            for block in table:
                refs[block] += 1
        if self.prefix_caching and refs != self._refs:
            raise ServeInternalError("KV block refcounts disagree with the block tables")
        if not self.prefix_caching and max(refs) > 1:
            raise ServeInternalError("a KV block is in two block tables without prefix caching")
        free, cached = set(self._free), set(self._lru)
        held = {b for b in range(self.num_blocks) if refs[b] > 0}
        if len(free) != len(self._free) or free & cached or free & held or cached & held:
            raise ServeInternalError("a KV block is in more than one of: free list, cache, held")
        if len(free) + len(cached) + len(held) != self.num_blocks:
            raise ServeInternalError(
                f"KV blocks lost: {len(free)} free + {len(cached)} cached + {len(held)} held != {self.num_blocks}"
            )
        for key, block in self._by_key.items():
            if self._key_of[block] != key:
                raise ServeInternalError(f"prefix key {key!r} maps to block {block} which holds another prefix")
