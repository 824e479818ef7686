//! Unit tests of the pieces.

use super::*;

#[test]
fn metadata_is_under_half_a_byte_per_chunk() {
    for (size, chunk) in [
        (80u64 << 30, SZ_4K),
        (192 << 30, SZ_4K),
        (7 * SZ_1M, SZ_4K),
        (1 << 20, SZ_4K),
    ] {
        let bytes = metadata_bytes(size, chunk);
        let chunks = size / chunk;
        assert!(
            bytes * 2 <= chunks + 64 * 8,
            "{size}: {bytes} bytes for {chunks} chunks"
        );
    }
    assert_eq!(metadata_words(4095, SZ_4K), 0);
    assert_eq!(metadata_words(1 << 20, 2048), 0);
    assert_eq!(metadata_words(1 << 20, 12288), 0);
}

#[test]
fn init_rejects_bad_params() {
    let mut st = [0u64; 64];
    let bad = |size, chunk_size| BuddyParams {
        base_offset: 0,
        size,
        chunk_size,
    };
    for p in [
        bad(4095, SZ_4K),
        bad(1 << 20, 2048),
        bad(1 << 20, 3 * SZ_4K),
    ] {
        assert!(matches!(
            Buddy::with_storage(p, &mut st),
            Err(BuddyError::Invalid(_))
        ));
    }
    let p = BuddyParams {
        base_offset: u64::MAX - SZ_4K,
        size: 2 * SZ_4K,
        chunk_size: SZ_4K,
    };
    assert!(matches!(
        Buddy::with_storage(p, &mut st),
        Err(BuddyError::Invalid(_))
    ));
    let p = BuddyParams {
        base_offset: 0,
        size: 1 << 30,
        chunk_size: SZ_4K,
    };
    assert_eq!(
        Buddy::with_storage(p, &mut st).err(),
        Some(BuddyError::NoMemory)
    );
}

#[test]
fn base_offset_is_added_and_ranges_are_absolute() {
    let p = BuddyParams {
        base_offset: 1 << 40,
        size: 16 * SZ_1M,
        chunk_size: SZ_4K,
    };
    let words = Buddy::metadata_words(&p);
    let mut st = vec![0u64; words];
    let mut b = Buddy::with_storage(p, &mut st).unwrap();
    let r = alloc(
        &mut b,
        range((1 << 40) + SZ_1M, (1 << 40) + 2 * SZ_1M),
        SZ_4K,
        SZ_4K,
        AllocFlags::NONE,
    )
    .unwrap();
    assert_eq!(r[0].offset(), (1 << 40) + SZ_1M);
    assert_eq!(
        alloc(&mut b, range(0, SZ_1M), SZ_4K, SZ_4K, AllocFlags::NONE),
        Err(BuddyError::Invalid(InvalidArg::RangeOverflow))
    );
    b.free_blocks(&r, false).unwrap();
    fini(&b);
}

#[test]
fn double_free_is_refused_and_changes_nothing() {
    let mut b = mk(SZ_1M, SZ_4K);
    let a = alloc(&mut b, AllocMode::Simple, SZ_4K, SZ_4K, AllocFlags::NONE).unwrap();
    let c = alloc(
        &mut b,
        AllocMode::Simple,
        2 * SZ_4K,
        SZ_4K,
        AllocFlags::NONE,
    )
    .unwrap();
    b.free_blocks(&a, true).unwrap();
    let avail = b.avail();
    let both = [c[0], a[0]];
    assert!(matches!(
        b.free_blocks(&both, false),
        Err(BuddyError::NotAllocated { .. })
    ));
    assert_eq!(b.avail(), avail);
    assert_eq!(b.clear_avail(), SZ_4K);
    b.check().unwrap();
    b.free_blocks(&c, false).unwrap();
    fini(&b);
}

#[test]
fn slice_sink_full_rolls_back() {
    let mut b = mk(SZ_1M, SZ_4K);
    let mut buf = [Block::EMPTY; 1];
    let mut s = SliceSink::new(&mut buf);
    let req = AllocRequest::new(AllocMode::Simple, 3 * SZ_4K, SZ_4K);
    assert_eq!(b.alloc_into(&req, &mut s), Err(BuddyError::SinkFull));
    assert_eq!(s.len(), 0);
    fini(&b);
    let mut buf = [Block::EMPTY; 2];
    let mut s = SliceSink::new(&mut buf);
    b.alloc_into(&req, &mut s).unwrap();
    assert_eq!(total(s.as_slice()), 3 * SZ_4K);
    let blocks: Vec<Block> = s.as_slice().to_vec();
    b.free_blocks(&blocks, false).unwrap();
    fini(&b);
}

#[test]
fn user_trim_with_start() {
    let mut b = mk(SZ_1M, SZ_4K);
    let a = alloc(
        &mut b,
        AllocMode::Simple,
        64 * 1024,
        64 * 1024,
        AllocFlags::TRIM_DISABLE,
    )
    .unwrap();
    assert_eq!(a.len(), 1);
    let blk = a[0];
    let mut s = VecSink::default();
    assert_eq!(
        b.trim_into(&blk, Some(blk.offset() + SZ_4K), 64 * 1024, &mut s),
        Err(BuddyError::Invalid(InvalidArg::Trim))
    );
    assert_eq!(
        b.trim_into(&blk, None, 0, &mut s),
        Err(BuddyError::Invalid(InvalidArg::Trim))
    );
    assert_eq!(
        b.trim_into(&blk, None, 100, &mut s),
        Err(BuddyError::Invalid(InvalidArg::Trim))
    );
    b.trim_into(&blk, Some(blk.offset() + 3 * SZ_4K), 5 * SZ_4K, &mut s)
        .unwrap();
    assert_eq!(total(&s.0), 5 * SZ_4K);
    assert_eq!(s.0[0].offset(), blk.offset() + 3 * SZ_4K);
    assert!(s
        .0
        .windows(2)
        .all(|w| w[0].offset() + w[0].size() == w[1].offset()));
    assert_eq!(b.avail(), SZ_1M - 5 * SZ_4K);
    b.check().unwrap();
    b.free_blocks(&s.0, false).unwrap();
    fini(&b);
}

#[test]
fn contiguous_non_power_of_two_without_double_reservation() {
    // 12 pages free in a row but no free 16-page block: the fallback finds the exact run.
    let mut b = mk(32 * SZ_4K, SZ_4K);
    let hold = alloc(
        &mut b,
        range(0, 4 * SZ_4K),
        4 * SZ_4K,
        SZ_4K,
        AllocFlags::NONE,
    )
    .unwrap();
    let hold2 = alloc(
        &mut b,
        range(16 * SZ_4K, 20 * SZ_4K),
        4 * SZ_4K,
        SZ_4K,
        AllocFlags::NONE,
    )
    .unwrap();
    let r = alloc(
        &mut b,
        AllocMode::Simple,
        12 * SZ_4K,
        SZ_4K,
        AllocFlags::CONTIGUOUS,
    )
    .unwrap();
    assert_eq!(total(&r), 12 * SZ_4K);
    assert!(r
        .windows(2)
        .all(|w| w[0].offset() + w[0].size() == w[1].offset()));
    // With min 32K the start must be 32K-aligned: [4,16) and [20,32) start unaligned.
    b.free_blocks(&r, false).unwrap();
    assert_eq!(
        alloc(
            &mut b,
            AllocMode::Simple,
            12 * SZ_4K,
            8 * SZ_4K,
            AllocFlags::CONTIGUOUS
        ),
        Err(BuddyError::NoSpace)
    );
    let r = alloc(
        &mut b,
        AllocMode::Simple,
        6 * SZ_4K,
        8 * SZ_4K,
        AllocFlags::CONTIGUOUS,
    )
    .unwrap();
    assert_eq!(total(&r), 6 * SZ_4K);
    assert_eq!(r[0].offset() % (8 * SZ_4K), 0);
    b.free_blocks(&r, false).unwrap();
    b.free_blocks(&hold, false).unwrap();
    b.free_blocks(&hold2, false).unwrap();
    fini(&b);
}

#[test]
fn topdown_takes_the_highest_address() {
    let mut b = mk(7 * SZ_1M, SZ_4K);
    let r = alloc(&mut b, AllocMode::TopDown, SZ_4K, SZ_4K, AllocFlags::NONE).unwrap();
    assert_eq!(r[0].offset(), 7 * SZ_1M - SZ_4K);
    let r2 = alloc(
        &mut b,
        AllocMode::TopDown,
        2 * SZ_1M,
        SZ_4K,
        AllocFlags::NONE,
    )
    .unwrap();
    assert_eq!(r2[0].offset(), 4 * SZ_1M);
    b.free_blocks(&r, false).unwrap();
    b.free_blocks(&r2, false).unwrap();
    fini(&b);
}

#[test]
#[cfg_attr(miri, ignore)] // too slow under miri
fn vk_cts_pattern_does_not_fragment() {
    let mut b = mk(64 * SZ_1M, SZ_4K);
    for run in 0..3 {
        let mut live = Vec::new();
        for _ in 0..200 {
            let r = alloc(
                &mut b,
                AllocMode::Simple,
                8192,
                256 * 1024,
                AllocFlags::NONE,
            )
            .unwrap();
            assert_eq!(r[0].size(), 8192);
            assert_eq!(r[0].offset() % (256 * 1024), 0);
            live.push(r[0]);
        }
        for blk in live.iter().rev() {
            b.free_blocks(&[*blk], run % 2 == 0).unwrap();
        }
        // Everything merged back into the single root, whatever the clear state.
        assert_eq!(b.free_count(b.max_order()), 1);
        fini(&b);
    }
}

#[test]
fn buddy_is_small_by_value() {
    // The in-kernel self-tests keep a `Buddy` on the 16 KiB kernel stack.
    let size = core::mem::size_of::<Buddy<'static>>();
    std::eprintln!("size_of::<Buddy>() = {size}");
    assert!(size <= 4096, "{size}");
}

#[test]
fn free_at_refuses_every_offset_that_is_not_an_allocated_chunk() {
    // Base near the top of the address space, so offsets below it wrap far.
    let base = u64::MAX - (64 << 20) + 1 - (1 << 30);
    let size = 64 << 20;
    let p = BuddyParams {
        base_offset: base,
        size,
        chunk_size: SZ_4K,
    };
    let mut st = std::vec![0u64; Buddy::metadata_words(&p)];
    let mut b = Buddy::with_storage(p, &mut st).unwrap();
    let x = b.alloc_chunk().unwrap();
    let before = (b.avail(), b.clear_avail());
    let refused = |off: u64| BuddyError::NotAllocated {
        offset: off,
        order: 0,
    };
    for off in [
        0,
        base - SZ_4K,
        base - 1,
        base + 1,
        x.offset() + 1,
        x.offset() - SZ_4K, // free
        base + size,
        u64::MAX - SZ_4K + 1,
        u64::MAX,
    ] {
        assert_eq!(b.free_at(off, 0, false), Err(refused(off)), "{off:#x}");
        assert_eq!((b.avail(), b.clear_avail()), before);
    }
    assert_eq!(b.free_at(x.offset(), 0, true), Ok(()));
    assert_eq!(b.free_at(x.offset(), 0, true), Err(refused(x.offset())));
    assert_eq!(b.clear_avail(), SZ_4K);
    assert_eq!(b.check(), Ok(()));
}
