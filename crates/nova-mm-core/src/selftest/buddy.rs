//! Self-tests of [`crate::buddy`]: scenarios of the ported gpu_buddy KUnit suite
//! (`buddy/tests/kunit.rs`) sized for kernel memory (pools of 1-16 MiB of 4 KiB chunks), with
//! the metadata and the result blocks in the caller's [`Scratch`].

use super::{Scratch, SelfTestResult};
use crate::buddy::{
    AllocFlags, AllocMode, AllocRequest, Block, Buddy, BuddyError, BuddyParams, SliceSink,
};
use crate::{st_ensure, st_eq};

pub(crate) const TESTS: &[super::SelfTest] = crate::selftests!(
    "buddy",
    scratch [
        init_and_errors,
        alloc_optimistic,
        alloc_pessimistic,
        alloc_contiguous,
        alloc_clear,
        alloc_range_and_topdown,
        trim_and_offset_aligned,
        exceeds_max_order,
    ]
);

const PS: u64 = 4096;
const MIB: u64 = 1 << 20;
const NONE: AllocFlags = AllocFlags::NONE;
const CONTIG: AllocFlags = AllocFlags::CONTIGUOUS;
const CLEAR: AllocFlags = AllocFlags::CLEAR;

fn params(size: u64) -> BuddyParams {
    BuddyParams {
        base_offset: 0,
        size,
        chunk_size: PS,
    }
}

/// A pool of `size` bytes of 4 KiB chunks over `words`, as the constructor's own `Result` (no
/// mapping, which would copy the ~3 KiB `Buddy`): the test borrows the pool out of it with
/// [`pool`], so its frame holds one `Buddy` (the kernel stack is 16 KiB).
#[inline(always)]
fn mk(words: &mut [u64], size: u64) -> Result<Buddy<'_>, BuddyError> {
    Buddy::with_storage(params(size), words)
}

/// The pool inside [`mk`]'s result.
fn pool<'r, 'a>(
    r: &'r mut Result<Buddy<'a>, BuddyError>,
) -> Result<&'r mut Buddy<'a>, &'static str> {
    r.as_mut().map_err(|_| "buddy: cannot create the pool")
}

/// The error creating a pool fails with, in its own frame so the test's frame holds no
/// allocator state (the kernel stack is small).
#[inline(never)]
fn creation_error(p: BuddyParams, words: &mut [u64]) -> Option<BuddyError> {
    Buddy::with_storage(p, words).err()
}

/// Allocates into `out`, returning how many blocks were written.
fn alloc(
    b: &mut Buddy<'_>,
    out: &mut [Block],
    mode: AllocMode,
    size: u64,
    min: u64,
    flags: AllocFlags,
) -> Result<usize, BuddyError> {
    let mut sink = SliceSink::new(out);
    b.alloc_into(
        &AllocRequest::new(mode, size, min).with_flags(flags),
        &mut sink,
    )?;
    Ok(sink.as_slice().len())
}

fn total(blocks: &[Block]) -> u64 {
    blocks.iter().fold(0u64, |t, b| t.saturating_add(b.size()))
}

/// Ends a scenario as the KUnit suite's `fini` does: nothing leaked, metadata consistent.
fn fini(b: &Buddy<'_>) -> SelfTestResult {
    st_ensure!(b.check().is_ok());
    st_ensure!(b.leak_report().is_none());
    st_eq!(b.avail(), b.size());
    Ok(())
}

fn init_and_errors(s: &mut Scratch<'_>) -> SelfTestResult {
    // Bad parameters are typed errors, never panics.
    let bad = BuddyParams {
        chunk_size: 1000,
        ..params(MIB)
    };
    st_ensure!(matches!(
        creation_error(bad, s.words),
        Some(BuddyError::Invalid(_))
    ));
    let tiny = BuddyParams {
        size: 1024,
        ..params(MIB)
    };
    st_ensure!(creation_error(tiny, s.words).is_some());
    // Metadata storage too short.
    let need = Buddy::metadata_words(&params(16 * MIB));
    st_ensure!(need > 0 && need <= s.words.len());
    let short = s.words.get_mut(..need.saturating_sub(1)).unwrap_or(&mut []);
    st_ensure!(matches!(
        creation_error(params(16 * MIB), short),
        Some(BuddyError::NoMemory)
    ));
    let mut made = mk(s.words, 16 * MIB);
    let b = pool(&mut made)?;
    st_eq!(b.size(), 16 * MIB);
    st_eq!(b.chunk_size(), PS);
    st_eq!(b.max_order(), 12);
    st_eq!(b.root_count(), 1);
    st_eq!(b.avail(), 16 * MIB);
    // Size 0, a size not a multiple of the chunk, a bad min block: Invalid.
    for (size, min) in [(0, PS), (PS + 1, PS), (PS, 3 * PS)] {
        st_ensure!(matches!(
            alloc(b, s.blocks, AllocMode::Simple, size, min, NONE),
            Err(BuddyError::Invalid(_))
        ));
    }
    // A full sink: SinkFull, nothing allocated.
    let none: &mut [Block] = &mut [];
    st_ensure!(matches!(
        alloc(b, none, AllocMode::Simple, PS, PS, NONE),
        Err(BuddyError::SinkFull)
    ));
    st_eq!(b.avail(), 16 * MIB);
    // Double free: NotAllocated, and nothing changes.
    let n = alloc(b, s.blocks, AllocMode::Simple, PS, PS, NONE).map_err(|_| "alloc")?;
    st_eq!(n, 1);
    let got = s.blocks.get(..1).unwrap_or(&[]);
    st_ensure!(b.free_blocks(got, false).is_ok());
    st_ensure!(matches!(
        b.free_blocks(got, false),
        Err(BuddyError::NotAllocated { .. })
    ));
    fini(b)
}

/// KUnit alloc_optimistic: one block of every order fits a `2^10 − 1`-page pool exactly.
fn alloc_optimistic(s: &mut Scratch<'_>) -> SelfTestResult {
    let mut made = mk(s.words, PS * ((1 << 10) - 1));
    let b = pool(&mut made)?;
    st_eq!(b.root_count(), 10);
    st_eq!(b.max_order(), 9);
    for order in 0..=9u32 {
        let out = s.blocks.get_mut(order as usize..).unwrap_or(&mut []);
        let n = alloc(b, out, AllocMode::Simple, PS << order, PS, NONE)
            .map_err(|_| "an order did not fit")?;
        st_eq!(n, 1);
    }
    st_eq!(b.avail(), 0);
    st_ensure!(matches!(
        alloc(b, s.blocks, AllocMode::Simple, PS, PS, NONE),
        Err(BuddyError::NoSpace)
    ));
    st_ensure!(b
        .free_blocks(s.blocks.get(..10).unwrap_or(&[]), false)
        .is_ok());
    fini(b)
}

/// KUnit alloc_pessimistic, sized down: fill a 1 MiB pool page by page, free every other page
/// (nothing bigger than a page can be had), then the rest (everything merges back).
fn alloc_pessimistic(s: &mut Scratch<'_>) -> SelfTestResult {
    let mut made = mk(s.words, MIB);
    let b = pool(&mut made)?;
    st_eq!(b.max_order(), 8);
    for i in 0..256usize {
        let out = s.blocks.get_mut(i..).unwrap_or(&mut []);
        st_eq!(alloc(b, out, AllocMode::Simple, PS, PS, NONE), Ok(1));
    }
    st_ensure!(matches!(
        alloc(b, &mut [Block::EMPTY], AllocMode::Simple, PS, PS, NONE),
        Err(BuddyError::NoSpace)
    ));
    for pass in 0..2usize {
        for (i, blk) in s.blocks.iter().enumerate().take(256) {
            if i % 2 == pass {
                st_ensure!(b.free_blocks(core::slice::from_ref(blk), false).is_ok());
            }
        }
        if pass == 0 {
            st_eq!(b.avail(), MIB / 2);
            st_eq!(b.free_count(0), 128);
            st_ensure!(matches!(
                alloc(
                    b,
                    &mut [Block::EMPTY],
                    AllocMode::Simple,
                    2 * PS,
                    2 * PS,
                    NONE
                ),
                Err(BuddyError::NoSpace)
            ));
        }
    }
    st_eq!(b.free_count(8), 1);
    fini(b)
}

/// KUnit alloc_contiguous: 48 pages in thirds; contiguous requests fail until neighbours free.
fn alloc_contiguous(s: &mut Scratch<'_>) -> SelfTestResult {
    let mut made = mk(s.words, 48 * PS);
    let b = pool(&mut made)?;
    st_eq!(b.root_count(), 2);
    let (pages, rest) = s.blocks.split_at_mut(48);
    for (i, slot) in pages.iter_mut().enumerate() {
        // Group i % 3 at index (i % 3) * 16 + i / 3: left, middle, right thirds.
        let _ = i;
        st_eq!(
            alloc(
                b,
                core::slice::from_mut(slot),
                AllocMode::Simple,
                PS,
                PS,
                NONE
            ),
            Ok(1)
        );
    }
    let third = |k: usize| -> [usize; 16] {
        let mut idx = [0usize; 16];
        for (j, x) in idx.iter_mut().enumerate() {
            *x = j.saturating_mul(3).saturating_add(k);
        }
        idx
    };
    let free_third = |b: &mut Buddy<'_>, pages: &[Block], k: usize| -> SelfTestResult {
        for i in third(k) {
            let blk = pages.get(i).ok_or("index")?;
            st_ensure!(b.free_blocks(core::slice::from_ref(blk), false).is_ok());
        }
        Ok(())
    };
    let no_space = Err(BuddyError::NoSpace);
    st_eq!(
        alloc(b, rest, AllocMode::Simple, 3 * PS, PS, CONTIG),
        no_space
    );
    free_third(b, pages, 1)?;
    st_eq!(
        alloc(b, rest, AllocMode::Simple, 3 * PS, PS, CONTIG),
        no_space
    );
    st_eq!(
        alloc(b, rest, AllocMode::Simple, 2 * PS, PS, CONTIG),
        no_space
    );
    free_third(b, pages, 2)?;
    st_eq!(
        alloc(b, rest, AllocMode::Simple, 3 * PS, PS, CONTIG),
        no_space
    );
    let n1 = alloc(b, rest, AllocMode::Simple, 2 * PS, PS, CONTIG).map_err(|_| "2 pages")?;
    free_third(b, pages, 0)?;
    let (first, second) = rest.split_at_mut(n1);
    let n2 = alloc(b, second, AllocMode::Simple, 3 * PS, PS, CONTIG).map_err(|_| "3 pages")?;
    st_eq!(
        total(first).saturating_add(total(second.get(..n2).unwrap_or(&[]))),
        5 * PS
    );
    // The three pages are one contiguous range.
    let got = second.get(..n2).unwrap_or(&[]);
    let lo = got.iter().map(Block::offset).min().unwrap_or(0);
    let hi = got
        .iter()
        .map(|b| b.offset().saturating_add(b.size()))
        .max()
        .unwrap_or(0);
    st_eq!(hi.saturating_sub(lo), 3 * PS);
    st_ensure!(b.check().is_ok());
    st_ensure!(b.free_blocks(first, false).is_ok());
    st_ensure!(b.free_blocks(got, false).is_ok());
    fini(b)
}

/// KUnit alloc_clear (a): cleared memory is preferred for CLEAR requests, dirty otherwise.
fn alloc_clear(s: &mut Scratch<'_>) -> SelfTestResult {
    let mut made = mk(s.words, 16 * MIB);
    let b = pool(&mut made)?;
    let n = alloc(b, s.blocks, AllocMode::TopDown, 5 * PS, PS, NONE).map_err(|_| "five")?;
    let five = s.blocks.get(..n).unwrap_or(&[]);
    st_eq!(total(five), 5 * PS);
    st_ensure!(b.free_blocks(five, true).is_ok());
    st_eq!(b.clear_avail(), 5 * PS);
    let mut blk = [Block::EMPTY];
    for i in 0..10u32 {
        let flags = if i % 2 == 0 { NONE } else { CLEAR };
        st_eq!(alloc(b, &mut blk, AllocMode::Simple, PS, PS, flags), Ok(1));
        let [got] = blk;
        st_ensure!(got.is_clear() == (flags.contains(CLEAR)));
        st_ensure!(b.free_blocks(&blk, flags.contains(CLEAR)).is_ok());
    }
    st_eq!(b.clear_avail(), 5 * PS);
    // A CLEAR request larger than the clear memory falls back to dirty memory.
    let n = alloc(b, s.blocks, AllocMode::Simple, 8 * PS, PS, CLEAR).map_err(|_| "eight")?;
    let eight = s.blocks.get(..n).unwrap_or(&[]);
    st_eq!(total(eight), 8 * PS);
    st_ensure!(b.free_blocks(eight, false).is_ok());
    b.reset_clear(true);
    st_eq!(b.clear_avail(), 16 * MIB);
    b.reset_clear(false);
    st_eq!(b.clear_avail(), 0);
    fini(b)
}

/// KUnit alloc_range, sized down: exact ranges, ranges within bounds, and top-down placement.
fn alloc_range_and_topdown(s: &mut Scratch<'_>) -> SelfTestResult {
    let mut made = mk(s.words, 4 * MIB);
    let b = pool(&mut made)?;
    // An exact range: blocks cover exactly [start, end).
    const START: u64 = 0x13_000;
    const LEN: u64 = 0x25_000;
    let (start, end) = (START, START + LEN);
    let n = alloc(b, s.blocks, AllocMode::Range { start, end }, LEN, PS, NONE)
        .map_err(|_| "exact range")?;
    let got = s.blocks.get(..n).unwrap_or(&[]);
    st_eq!(total(got), LEN);
    st_ensure!(got
        .iter()
        .all(|b| b.offset() >= start && b.offset().saturating_add(b.size()) <= end));
    // The same range again: NoSpace.
    st_ensure!(matches!(
        alloc(
            b,
            &mut [Block::EMPTY; 8],
            AllocMode::Range { start, end },
            LEN,
            PS,
            NONE
        ),
        Err(BuddyError::NoSpace)
    ));
    // A range outside the pool: Invalid.
    st_ensure!(matches!(
        alloc(
            b,
            &mut [Block::EMPTY; 8],
            AllocMode::Range {
                start: 4 * MIB,
                end: 5 * MIB
            },
            PS,
            PS,
            NONE
        ),
        Err(BuddyError::Invalid(_))
    ));
    // Top-down: the highest page.
    let mut top = [Block::EMPTY];
    st_eq!(alloc(b, &mut top, AllocMode::TopDown, PS, PS, NONE), Ok(1));
    st_eq!(top[0].offset(), 4 * MIB - PS);
    st_ensure!(b.free_blocks(&top, false).is_ok());
    st_ensure!(b.free_blocks(got, false).is_ok());
    fini(b)
}

/// KUnit trim and offset-aligned allocation: trimming frees the tail; a power-of-two size
/// below min_block_size gets one block at a min_block_size-aligned offset.
fn trim_and_offset_aligned(s: &mut Scratch<'_>) -> SelfTestResult {
    let mut made = mk(s.words, 4 * MIB);
    let b = pool(&mut made)?;
    let mut one = [Block::EMPTY];
    st_eq!(
        alloc(b, &mut one, AllocMode::Simple, 8 * PS, PS, NONE),
        Ok(1)
    );
    let [blk] = one;
    st_eq!(blk.size(), 8 * PS);
    let mut sink = SliceSink::new(s.blocks);
    st_ensure!(b.trim_into(&blk, None, 3 * PS, &mut sink).is_ok());
    let kept = sink.as_slice();
    st_eq!(total(kept), 3 * PS);
    st_ensure!(kept.iter().all(|k| k.offset() >= blk.offset()));
    st_eq!(b.avail(), 4 * MIB - 3 * PS);
    st_ensure!(b.free_blocks(kept, false).is_ok());
    // Offset-aligned: 8 KiB at a 64 KiB-aligned offset.
    st_eq!(
        alloc(b, &mut one, AllocMode::Simple, 2 * PS, 16 * PS, NONE),
        Ok(1)
    );
    let [blk] = one;
    st_eq!(blk.size(), 2 * PS);
    st_eq!(blk.offset() % (16 * PS), 0);
    st_ensure!(b.free_blocks(&one, false).is_ok());
    fini(b)
}

/// KUnit alloc_exceeds_max_order: a size above the largest block works only as a non-contiguous
/// request of several blocks; a contiguous one is refused.
fn exceeds_max_order(s: &mut Scratch<'_>) -> SelfTestResult {
    // 3 MiB: roots of 2 MiB and 1 MiB, max order 9.
    let mut made = mk(s.words, 3 * MIB);
    let b = pool(&mut made)?;
    st_eq!(b.max_order(), 9);
    st_eq!(b.root_count(), 2);
    st_ensure!(alloc(b, s.blocks, AllocMode::Simple, 3 * MIB, 4 * MIB, NONE).is_err());
    let n = alloc(b, s.blocks, AllocMode::Simple, 3 * MIB, PS, NONE).map_err(|_| "3 MiB")?;
    let got = s.blocks.get(..n).unwrap_or(&[]);
    st_eq!(total(got), 3 * MIB);
    st_eq!(b.avail(), 0);
    st_ensure!(b.free_blocks(got, false).is_ok());
    fini(b)
}
