//! The engine's connection slab: slots reused through a free list, each with
//! a generation that moves on when its value is removed, so an [`Id`] names
//! one connection only and a stale one (a late JS call, an epoll event for a
//! closed descriptor) finds nothing. Every lookup goes through [`Slab::get`] /
//! [`Slab::get_mut`], which check the generation.

use super::batch::SLOT_BITS;

const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
/// Generations wrap at 2^30, so a JS id (`gen * 2^22 + slot`) stays below 2^52.
const GEN_MASK: u32 = (1 << 30) - 1;

/// A connection's id: its slot and the slot's generation when it was made.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(super) struct Id {
    pub(super) slot: u32,
    pub(super) gen: u32,
}

impl Id {
    /// The epoll token for this id.
    pub(super) fn token(self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.slot)
    }
    /// The id an epoll token was made from (`token`).
    pub(super) fn from_token(t: u64) -> Id {
        Id {
            slot: t as u32,
            gen: (t >> 32) as u32,
        }
    }
    /// Parses a JS id (`gen * 2^SLOT_BITS + slot`).
    pub(super) fn from_js(v: i64) -> Option<Id> {
        if v < 0 {
            return None;
        }
        let v = v as u64;
        Some(Id {
            slot: (v & SLOT_MASK) as u32,
            gen: u32::try_from(v >> SLOT_BITS).ok()?,
        })
    }
}

struct Slot<T> {
    gen: u32,
    val: Option<T>,
}

/// Values by [`Id`], at most 2^[`SLOT_BITS`] at once.
pub(super) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

impl<T> Slab<T> {
    pub(super) fn new() -> Slab<T> {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Takes a free slot and returns its id (None when all 2^SLOT_BITS are
    /// taken). The slot stays empty until [`Slab::fill`]; [`Slab::release`]
    /// gives it back unused.
    pub(super) fn reserve(&mut self) -> Option<Id> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                if self.slots.len() as u64 > SLOT_MASK {
                    return None;
                }
                self.slots.push(Slot { gen: 0, val: None });
                (self.slots.len() - 1) as u32
            }
        };
        Some(Id {
            slot,
            gen: self.slots[slot as usize].gen,
        })
    }

    /// Gives back a slot [`Slab::reserve`] returned and that was not filled.
    pub(super) fn release(&mut self, id: Id) {
        self.free.push(id.slot);
    }

    /// Puts `val` in the slot reserved as `id`.
    pub(super) fn fill(&mut self, id: Id, val: T) {
        self.slots[id.slot as usize].val = Some(val);
    }

    /// The value of `id`, if it is still there (the one checked lookup).
    pub(super) fn get(&self, id: Id) -> Option<&T> {
        let slot = self.slots.get(id.slot as usize)?;
        if slot.gen != id.gen {
            return None;
        }
        slot.val.as_ref()
    }

    /// The value of `id`, if it is still there (the one checked lookup).
    pub(super) fn get_mut(&mut self, id: Id) -> Option<&mut T> {
        let slot = self.slots.get_mut(id.slot as usize)?;
        if slot.gen != id.gen {
            return None;
        }
        slot.val.as_mut()
    }

    /// Takes the value of `id` out; the slot's generation moves on (so `id`
    /// finds nothing from now on) and the slot is free again.
    pub(super) fn remove(&mut self, id: Id) -> Option<T> {
        let slot = self.slots.get_mut(id.slot as usize)?;
        if slot.gen != id.gen {
            return None;
        }
        let val = slot.val.take()?;
        slot.gen = (slot.gen + 1) & GEN_MASK;
        self.free.push(id.slot);
        Some(val)
    }

    /// How many slots exist (taken or free): ids for `id_at` are below it.
    pub(super) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The current id of slot `i` (`i < capacity()`), whether or not it holds a value.
    pub(super) fn id_at(&self, i: usize) -> Id {
        Id {
            slot: i as u32,
            gen: self.slots[i].gen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_id_finds_nothing_and_its_slot_gets_a_new_generation() {
        let mut s = Slab::new();
        let a = s.reserve().unwrap();
        s.fill(a, 'a');
        assert_eq!(s.get(a), Some(&'a'));
        assert_eq!(s.remove(a), Some('a'));
        assert_eq!(s.get(a), None);
        assert_eq!(s.remove(a), None);
        let b = s.reserve().unwrap();
        assert_eq!(b.slot, a.slot);
        assert_ne!(b.gen, a.gen);
        s.fill(b, 'b');
        assert_eq!(s.get_mut(a), None);
        assert_eq!(s.get(b), Some(&'b'));
        assert_eq!(
            Id::from_js(i64::from(b.gen) << SLOT_BITS | i64::from(b.slot)),
            Some(b)
        );
        assert_eq!(Id::from_token(b.token()), b);
        assert_eq!(Id::from_js(-1), None);
    }

    #[test]
    fn a_released_slot_is_reused_with_the_same_generation() {
        let mut s: Slab<u8> = Slab::new();
        let a = s.reserve().unwrap();
        s.release(a);
        assert_eq!(s.reserve(), Some(a));
        assert_eq!(s.get(a), None);
    }
}
