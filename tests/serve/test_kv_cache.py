"""The paged KV cache against a brute-force recount: never over capacity, refcounts right, prefixes shared."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from trnsim.serve import PagedKVCache


class KVCacheMachine(RuleBasedStateMachine):
    """Random allocate / grow / commit / free sequences; after each, recount everything from the tables."""

    prefix_caching = True

    def __init__(self) -> None:
        super().__init__()
        self.kv = PagedKVCache(num_blocks=24, block_tokens=4, prefix_caching=self.prefix_caching)
        self.tokens: dict[int, int] = {}  # live sequence -> tokens it holds
        self.keys: dict[int, tuple[tuple[int, int], ...]] = {}
        self.next_id = 0

    @rule(tokens=st.integers(1, 60), group=st.integers(-1, 2), prefix_blocks=st.integers(0, 6))
    def allocate(self, tokens: int, group: int, prefix_blocks: int) -> None:
        keys = tuple((group, i) for i in range(prefix_blocks)) if group >= 0 else ()
        fits = self.kv.can_allocate(tokens, keys)
        # Brute force: blocks it needs minus prefix hits on blocks other sequences hold right now.
        held = {b for s in self.tokens for b in self.kv.table(s)}
        hits = self.kv.cached_prefix_blocks(keys[: -(-tokens // 4)])
        hit_blocks = [self.kv.block_with_key(k) for k in keys[:hits]]
        need = -(-tokens // 4) - sum(1 for b in hit_blocks if b in held)
        assert fits == (need <= 24 - len(held))
        if not fits:
            return
        seq = self.next_id
        self.next_id += 1
        assert self.kv.allocate(seq, tokens, keys) == hits
        table = self.kv.table(seq)
        # Shared blocks are exactly the ones registered under this sequence's leading keys.
        assert table[:hits] == hit_blocks
        self.tokens[seq], self.keys[seq] = tokens, keys

    @precondition(lambda self: self.tokens)
    @rule(data=st.data(), extra=st.integers(1, 20))
    def grow(self, data: st.DataObject, extra: int) -> None:
        seq = data.draw(st.sampled_from(sorted(self.tokens)))
        before = self.kv.free_blocks
        need = -(-(self.tokens[seq] + extra) // 4) - self.kv.blocks_of(seq)
        ok = self.kv.ensure(seq, self.tokens[seq] + extra)
        assert ok == (need <= before)
        if ok:
            self.tokens[seq] += extra
        else:
            assert self.kv.free_blocks == before  # a refused growth changes nothing

    @precondition(lambda self: self.tokens)
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        seq = data.draw(st.sampled_from(sorted(self.tokens)))
        self.kv.commit(seq, self.tokens[seq], self.keys[seq])

    @precondition(lambda self: self.tokens)
    @rule(data=st.data())
    def free(self, data: st.DataObject) -> None:
        seq = data.draw(st.sampled_from(sorted(self.tokens)))
        self.kv.free(seq)
        del self.tokens[seq], self.keys[seq]

    @invariant()
    def recount(self) -> None:
        kv = self.kv
        tables = {s: kv.table(s) for s in self.tokens}
        held = {b for t in tables.values() for b in t}
        assert len(held) <= kv.num_blocks
        assert kv.used_blocks == len(held)  # never over capacity, nothing double counted
        for s, t in tables.items():
            assert len(t) == -(-self.tokens[s] // 4)
            assert len(set(t)) == len(t)
        # A block is in two tables only when both sequences reached it through the same prefix key.
        owners: dict[int, list[int]] = {}
        for s, t in tables.items():
            for i, b in enumerate(t):
                owners.setdefault(b, []).append(s)
                if len(owners[b]) > 1:
                    assert kv.block_key(b) is not None and i < len(self.keys[s]) and self.keys[s][i] == kv.block_key(b)
        for b in range(kv.num_blocks):
            assert kv.refcount(b) == len(owners.get(b, []))
            if not self.prefix_caching:
                assert kv.refcount(b) <= 1
        kv.check()


class KVCacheMachineNoPrefixCaching(KVCacheMachine):
    prefix_caching = False


TestKVCache = KVCacheMachine.TestCase
TestKVCache.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
TestKVCacheNoPrefixCaching = KVCacheMachineNoPrefixCaching.TestCase
TestKVCacheNoPrefixCaching.settings = settings(max_examples=50, stateful_step_count=40, deadline=None)


def test_lru_evicts_least_recently_freed_prefix_first() -> None:
    kv = PagedKVCache(num_blocks=4, block_tokens=2, prefix_caching=True)
    a, b = ((("a", 0), ("a", 1))), ((("b", 0), ("b", 1)))
    kv.allocate(1, 4, a)
    kv.commit(1, 4, a)
    kv.allocate(2, 4, b)
    kv.commit(2, 4, b)
    kv.free(1)  # prefix a cached first ...
    kv.free(2)  # ... then b
    assert kv.cached_blocks == 4 and kv.free_blocks == 4
    kv.allocate(3, 4)  # needs 2 blocks: evicts a's (oldest), deepest block first
    assert kv.cached_prefix_blocks(a) == 0
    assert kv.cached_prefix_blocks(b) == 2
    assert kv.allocate(4, 4, b) == 2  # b still whole and shared
    kv.check()


def test_uncommitted_blocks_are_not_shared() -> None:
    kv = PagedKVCache(num_blocks=8, block_tokens=2, prefix_caching=True)
    keys = (("p", 0), ("p", 1))
    kv.allocate(1, 4, keys)
    assert kv.allocate(2, 4, keys) == 0  # the first one's KV is not computed yet
    kv.commit(1, 2, keys)  # only its first block is computed
    assert kv.cached_prefix_blocks(keys) == 1
