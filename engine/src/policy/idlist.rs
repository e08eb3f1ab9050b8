//! A doubly linked list of ids over a slab (u32 links, 24-byte nodes) with an id → node
//! map: O(1) insert at the head, removal anywhere, move to head, and walking from the
//! tail. LRU and SIEVE are built on it.

use super::IdMap;

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Node {
    id: u64,
    prev: u32,
    next: u32,
    /// Policy-specific bits (SIEVE's visited bit).
    bits: u8,
}

#[derive(Default)]
pub(crate) struct IdList {
    nodes: Vec<Node>,
    free: Vec<u32>,
    map: IdMap<u32>,
    /// Most recently inserted end.
    head: Option<u32>,
    /// Oldest end.
    tail: Option<u32>,
}

impl IdList {
    pub fn contains(&self, id: u64) -> bool {
        self.map.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Room for `n` more ids.
    pub fn reserve(&mut self, n: usize) {
        self.nodes.reserve(n);
        self.map.reserve(n);
    }

    pub fn push_front(&mut self, id: u64) {
        if self.map.contains_key(&id) {
            return;
        }
        let node = Node {
            id,
            prev: NIL,
            next: self.head.unwrap_or(NIL),
            bits: 0,
        };
        let at = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        if let Some(h) = self.head {
            self.nodes[h as usize].prev = at;
        }
        self.head = Some(at);
        if self.tail.is_none() {
            self.tail = Some(at);
        }
        self.map.insert(id, at);
    }

    fn unlink(&mut self, at: u32) {
        let Node { prev, next, .. } = self.nodes[at as usize];
        if prev == NIL {
            self.head = (next != NIL).then_some(next);
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = (prev != NIL).then_some(prev);
        } else {
            self.nodes[next as usize].prev = prev;
        }
    }

    pub fn remove(&mut self, id: u64) -> bool {
        let Some(at) = self.map.remove(&id) else {
            return false;
        };
        self.unlink(at);
        self.free.push(at);
        if self.map.is_empty() {
            // Give the slab back once the list is empty.
            self.nodes.clear();
            self.free.clear();
        }
        true
    }

    pub fn move_to_front(&mut self, id: u64) {
        if let Some(&at) = self.map.get(&id)
            && self.head != Some(at)
        {
            let bits = self.nodes[at as usize].bits;
            self.unlink(at);
            self.map.remove(&id);
            self.free.push(at);
            self.push_front(id);
            self.set_bits(id, bits);
        }
    }

    pub fn bits_of(&self, id: u64) -> Option<u8> {
        self.map.get(&id).map(|&at| self.nodes[at as usize].bits)
    }

    pub fn set_bits(&mut self, id: u64, bits: u8) {
        if let Some(&at) = self.map.get(&id) {
            self.nodes[at as usize].bits = bits;
        }
    }

    /// The oldest id.
    pub fn back(&self) -> Option<u64> {
        self.tail.map(|t| self.nodes[t as usize].id)
    }

    /// A cursor at the oldest node, for walks toward the head.
    pub fn tail_cursor(&self) -> Option<u32> {
        self.tail
    }

    /// The node one step newer than `at`.
    pub fn newer(&self, at: u32) -> Option<u32> {
        let n = self.nodes[at as usize].prev;
        (n != NIL).then_some(n)
    }

    pub fn node(&self, at: u32) -> (u64, u8) {
        let n = &self.nodes[at as usize];
        (n.id, n.bits)
    }

    pub fn set_node_bits(&mut self, at: u32, bits: u8) {
        self.nodes[at as usize].bits = bits;
    }

    pub fn memory_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.free.capacity() * 4
            + self.map.capacity() * (8 + 4 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::IdList;

    #[test]
    fn order_moves_and_removals() {
        let mut l = IdList::default();
        for id in 1..=5 {
            l.push_front(id);
        }
        assert_eq!(l.back(), Some(1));
        l.move_to_front(1);
        assert_eq!(l.back(), Some(2));
        assert!(l.remove(2));
        assert!(!l.remove(2));
        assert_eq!(l.back(), Some(3));
        let mut walk = Vec::new();
        let mut c = l.tail_cursor();
        while let Some(at) = c {
            walk.push(l.node(at).0);
            c = l.newer(at);
        }
        assert_eq!(walk, vec![3, 4, 5, 1]);
        for id in [3, 4, 5, 1] {
            assert!(l.remove(id));
        }
        assert_eq!((l.len(), l.back()), (0, None));
    }
}
