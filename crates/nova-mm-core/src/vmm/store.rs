//! Host-side storage for the address-space manager, without `alloc`.
//!
//! Every piece of host bookkeeping (page-table shadow nodes, child arrays, saved entries of an
//! operation, VA intervals) lives in a [`Slab`]: an array that grows only through a fallible
//! [`Slab::try_reserve`] and is otherwise pushed into within its capacity. A kernel embedder
//! hands in fixed storage ([`FixedSlab`] over `&'a mut [T]`); with the `alloc` feature,
//! `alloc::vec::Vec` is a slab that grows with `try_reserve`. The manager reserves everything an
//! operation needs in its prepare step, so execution never grows a slab.

/// A slab could not grow: the fixed storage is full or the allocator refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("out of host bookkeeping storage")]
pub struct NoRoom;

/// A growable array with fallible growth and capacity-bounded pushes.
pub trait Slab<T: Copy> {
    /// Number of elements.
    fn len(&self) -> usize;
    /// Whether there are no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Makes room for `additional` more elements, allocating if the slab can.
    ///
    /// # Errors
    ///
    /// [`NoRoom`] if the room cannot be made.
    fn try_reserve(&mut self, additional: usize) -> Result<(), NoRoom>;
    /// Appends within the capacity reserved before.
    ///
    /// # Errors
    ///
    /// [`NoRoom`] (and nothing changes) when no room was reserved.
    fn push_reserved(&mut self, value: T) -> Result<(), NoRoom>;
    /// The element at `i`.
    fn get(&self, i: usize) -> Option<&T>;
    /// The element at `i`, mutably.
    fn get_mut(&mut self, i: usize) -> Option<&mut T>;
    /// Drops every element from `len` on.
    fn truncate(&mut self, len: usize);
    /// Inserts at `i`, shifting the tail, within reserved capacity.
    ///
    /// # Errors
    ///
    /// [`NoRoom`] when no room was reserved or `i > len`.
    fn insert_reserved(&mut self, i: usize, value: T) -> Result<(), NoRoom>;
    /// Removes the element at `i`, shifting the tail.
    fn remove(&mut self, i: usize) -> Option<T>;
}

/// A slab over storage the embedder provides.
#[derive(Debug)]
pub struct FixedSlab<'a, T> {
    buf: &'a mut [T],
    len: usize,
}

impl<'a, T> FixedSlab<'a, T> {
    /// An empty slab that can hold `buf.len()` elements.
    pub fn new(buf: &'a mut [T]) -> Self {
        Self { buf, len: 0 }
    }
}

impl<T: Copy> Slab<T> for FixedSlab<'_, T> {
    fn len(&self) -> usize {
        self.len
    }
    fn try_reserve(&mut self, additional: usize) -> Result<(), NoRoom> {
        match self.len.checked_add(additional) {
            Some(n) if n <= self.buf.len() => Ok(()),
            _ => Err(NoRoom),
        }
    }
    fn push_reserved(&mut self, value: T) -> Result<(), NoRoom> {
        let slot = self.buf.get_mut(self.len).ok_or(NoRoom)?;
        *slot = value;
        self.len = self.len.checked_add(1).ok_or(NoRoom)?;
        Ok(())
    }
    fn get(&self, i: usize) -> Option<&T> {
        if i < self.len {
            self.buf.get(i)
        } else {
            None
        }
    }
    fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i < self.len {
            self.buf.get_mut(i)
        } else {
            None
        }
    }
    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
    fn insert_reserved(&mut self, i: usize, value: T) -> Result<(), NoRoom> {
        if i > self.len || self.len >= self.buf.len() {
            return Err(NoRoom);
        }
        let end = self.len.checked_add(1).ok_or(NoRoom)?;
        let tail = self.buf.get_mut(i..end).ok_or(NoRoom)?;
        tail.rotate_right(1);
        if let Some(s) = tail.first_mut() {
            *s = value;
        }
        self.len = end;
        Ok(())
    }
    fn remove(&mut self, i: usize) -> Option<T> {
        if i >= self.len {
            return None;
        }
        let tail = self.buf.get_mut(i..self.len)?;
        let v = *tail.first()?;
        tail.rotate_left(1);
        self.len = self.len.checked_sub(1)?;
        Some(v)
    }
}

#[cfg(any(feature = "alloc", test))]
impl<T: Copy> Slab<T> for alloc::vec::Vec<T> {
    fn len(&self) -> usize {
        alloc::vec::Vec::len(self)
    }
    fn try_reserve(&mut self, additional: usize) -> Result<(), NoRoom> {
        alloc::vec::Vec::try_reserve(self, additional).map_err(|_| NoRoom)
    }
    fn push_reserved(&mut self, value: T) -> Result<(), NoRoom> {
        if self.len() < self.capacity() {
            self.push(value);
            Ok(())
        } else {
            Err(NoRoom)
        }
    }
    fn get(&self, i: usize) -> Option<&T> {
        self.as_slice().get(i)
    }
    fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.as_mut_slice().get_mut(i)
    }
    fn truncate(&mut self, len: usize) {
        alloc::vec::Vec::truncate(self, len);
    }
    fn insert_reserved(&mut self, i: usize, value: T) -> Result<(), NoRoom> {
        if i > self.len() || self.len() >= self.capacity() {
            return Err(NoRoom);
        }
        self.insert(i, value);
        Ok(())
    }
    fn remove(&mut self, i: usize) -> Option<T> {
        if i < self.len() {
            Some(alloc::vec::Vec::remove(self, i))
        } else {
            None
        }
    }
}

/// The empty slab: never holds anything (operations that save nothing use it).
impl<T: Copy> Slab<T> for () {
    fn len(&self) -> usize {
        0
    }
    fn try_reserve(&mut self, additional: usize) -> Result<(), NoRoom> {
        if additional == 0 {
            Ok(())
        } else {
            Err(NoRoom)
        }
    }
    fn push_reserved(&mut self, _: T) -> Result<(), NoRoom> {
        Err(NoRoom)
    }
    fn get(&self, _: usize) -> Option<&T> {
        None
    }
    fn get_mut(&mut self, _: usize) -> Option<&mut T> {
        None
    }
    fn truncate(&mut self, _: usize) {}
    fn insert_reserved(&mut self, _: usize, _: T) -> Result<(), NoRoom> {
        Err(NoRoom)
    }
    fn remove(&mut self, _: usize) -> Option<T> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_slab_is_bounded() {
        let mut buf = [0u32; 3];
        let mut s = FixedSlab::new(&mut buf);
        assert_eq!(s.push_reserved(1), Ok(()));
        assert_eq!(s.try_reserve(3), Err(NoRoom));
        s.try_reserve(2).unwrap();
        s.insert_reserved(0, 7).unwrap();
        s.push_reserved(9).unwrap();
        assert_eq!(s.push_reserved(4), Err(NoRoom));
        assert_eq!(
            (s.get(0), s.get(1), s.get(2), s.get(3)),
            (Some(&7), Some(&1), Some(&9), None)
        );
        assert_eq!(s.remove(0), Some(7));
        assert_eq!(s.len(), 2);
        assert_eq!(s.get(0), Some(&1));
    }
}
