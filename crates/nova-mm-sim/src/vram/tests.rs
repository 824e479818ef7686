use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn va(a: u64) -> VramAddress {
    VramAddress::new(a)
}

#[test]
fn unwritten_reads_zero_and_allocates_nothing() {
    let mut v = SimVram::new(192 << 30).unwrap();
    assert_eq!(v.read64(va(0x2f_0000_0000)).unwrap(), 0);
    assert_eq!(v.read32(va((192 << 30) - 4)).unwrap(), 0);
    assert_eq!(v.allocated_pages(), 0);
    v.write64(va(0x10_0000_0008), 0x1122_3344_5566_7788)
        .unwrap();
    assert_eq!(v.allocated_pages(), 1);
    assert_eq!(v.read32(va(0x10_0000_0008)).unwrap(), 0x5566_7788);
    assert_eq!(v.read32(va(0x10_0000_000c)).unwrap(), 0x1122_3344);
    // Zero writes to untouched pages allocate nothing.
    v.write64(va(0x20_0000_0000), 0).unwrap();
    v.fill_u64(va(0x1000_0000), 0, 1 << 20).unwrap();
    assert_eq!(v.allocated_pages(), 1);
}

#[test]
fn size_limit_and_range_checks() {
    assert!(matches!(
        SimVram::new((256 << 30) + 1),
        Err(SimVramError::TooLarge(_))
    ));
    let mut v = SimVram::new(256 << 30).unwrap();
    assert!(v.write64(va((256 << 30) - 8), 1).is_ok());
    assert_eq!(
        v.write64(va(256 << 30), 1),
        Err(VramError::OutOfRange {
            addr: va(256 << 30),
            len: 8
        })
    );
    assert_eq!(
        v.read64(va(4)),
        Err(VramError::Misaligned {
            addr: va(4),
            align: 8
        })
    );
    assert!(matches!(
        v.write_u64s(va((256 << 30) - 8), &[1, 2]),
        Err(VramError::OutOfRange { .. })
    ));
    // Nothing of the rejected bulk write landed.
    assert_eq!(v.peek64((256 << 30) - 8), Some(1));
    assert_eq!(v.peek64(u64::MAX - 3), None);
}

#[test]
fn odd_size_last_partial_page() {
    let mut v = SimVram::new(4096 + 12).unwrap();
    v.write32(va(4096 + 8), 0xdead_beef).unwrap();
    assert_eq!(v.read32(va(4096 + 8)).unwrap(), 0xdead_beef);
    assert!(v.read64(va(4096 + 8)).is_err());
}

#[test]
fn bulk_and_byte_helpers() {
    let mut v = SimVram::new(1 << 24).unwrap();
    let words: Vec<u64> = (0..1000u64).map(|i| i * 0x0101_0101 + 7).collect();
    v.write_u64s(va(0xff8), &words).unwrap();
    let mut back = vec![0u64; 1000];
    v.read_u64s(va(0xff8), &mut back).unwrap();
    assert_eq!(back, words);
    v.fill_u64(va(0x1000), 0xabcd, 3).unwrap();
    assert_eq!(v.read64(va(0x1010)).unwrap(), 0xabcd);
    assert_eq!(v.read64(va(0x1018)).unwrap(), words[4]);
    v.fill_u64(va(0x1000), 0, 2).unwrap();
    assert_eq!(v.read64(va(0x1008)).unwrap(), 0);
    assert_eq!(v.read64(va(0x1010)).unwrap(), 0xabcd);

    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8 + 1).collect();
    v.write_bytes(va(0x2_0003), &data).unwrap();
    let mut out = vec![0u8; 5000];
    v.read_bytes(va(0x2_0003), &mut out).unwrap();
    assert_eq!(out, data);
    // Little-endian view of the bytes: bytes at 0x2_0008.. are data[5..13].
    let expect = u64::from_le_bytes(data[5..13].try_into().unwrap());
    assert_eq!(v.read64(va(0x2_0008)).unwrap(), expect);
}

#[test]
fn counters_count_words_bytes_and_calls() {
    let mut v = SimVram::new(1 << 20).unwrap();
    v.write32(va(0), 1).unwrap();
    v.write64(va(8), 2).unwrap();
    v.write_u64s(va(16), &[1, 2, 3]).unwrap();
    v.fill_u64(va(64), 5, 4).unwrap();
    v.read32(va(0)).unwrap();
    v.read64(va(8)).unwrap();
    let mut o = [0u64; 2];
    v.read_u64s(va(16), &mut o).unwrap();
    v.read_bytes(va(1), &mut [0u8; 3]).unwrap();
    v.write_bytes(va(1), &[1, 2]).unwrap();
    let _ = v.read64(va(1 << 20)); // out of range: a call, not a read
    let s = v.stats();
    assert_eq!(s.writes, 1 + 1 + 3 + 4 + 1);
    assert_eq!(s.bytes_written, 4 + 8 + 24 + 32 + 2);
    assert_eq!(s.reads, 1 + 1 + 2 + 1);
    assert_eq!(s.bytes_read, 4 + 8 + 16 + 3);
    assert_eq!(
        s.calls,
        MethodCalls {
            read32: 1,
            write32: 1,
            read64: 2,
            write64: 1,
            read_u64s: 1,
            write_u64s: 1,
            fill_u64: 1,
            read_bytes: 1,
            write_bytes: 1,
        }
    );
    // The back door is not counted.
    v.poke64(0x100, 9);
    assert_eq!(v.peek64(0x100), Some(9));
    assert_eq!(v.stats(), s);
    v.reset_stats();
    assert_eq!(v.stats(), VramStats::default());
}

#[test]
fn nth_access_fails_once() {
    let mut v = SimVram::new(1 << 20).unwrap();
    v.set_fault(Some(FaultRule::nth(3)));
    v.write64(va(0), 1).unwrap();
    v.write64(va(8), 2).unwrap();
    assert_eq!(v.write64(va(16), 3), Err(VramError::Backend(EIO)));
    v.write64(va(24), 4).unwrap();
    assert_eq!(
        v.peek64(16),
        Some(0),
        "the failed write transferred nothing"
    );
    assert_eq!(v.stats().injected_faults, 1);
    assert_eq!(v.stats().writes, 3);
}

#[test]
fn nth_counts_words_of_bulk_calls_and_leaves_prefix() {
    let mut v = SimVram::new(1 << 20).unwrap();
    v.set_fault(Some(
        FaultRule::nth(5).only(FaultOps::Writes).with_code(-19),
    ));
    let r = v.write_u64s(va(0), &[1, 2, 3, 4, 5, 6]);
    assert_eq!(r, Err(VramError::Backend(-19)));
    let mut o = [0u64; 6];
    v.read_u64s(va(0), &mut o).unwrap(); // reads are not counted by a Writes rule
    assert_eq!(o, [1, 2, 3, 4, 0, 0]);
}

#[test]
fn after_n_fails_everything_later_until_cleared() {
    let mut v = SimVram::new(1 << 20).unwrap();
    v.add_fault(FaultRule::after(2));
    v.read64(va(0)).unwrap();
    v.write32(va(0), 1).unwrap();
    assert!(v.read64(va(0)).is_err());
    assert!(v.write64(va(8), 1).is_err());
    assert!(v.read_bytes(va(0), &mut [0; 4]).is_err());
    assert_eq!(v.stats().injected_faults, 3);
    v.clear_faults();
    assert_eq!(v.read64(va(0)).unwrap(), 1);
}

#[test]
fn range_fault_hits_overlapping_accesses_only() {
    let mut v = SimVram::new(1 << 20).unwrap();
    v.set_fault(Some(
        FaultRule::range(0x1004, 0x1008).only(FaultOps::Writes),
    ));
    v.write32(va(0x1000), 1).unwrap();
    assert!(v.write32(va(0x1004), 1).is_err());
    assert!(v.write64(va(0x1000), 1).is_err(), "8-byte write overlaps");
    v.write64(va(0x1008), 1).unwrap();
    assert_eq!(v.read32(va(0x1004)).unwrap(), 0, "reads pass");
    assert!(v.write_bytes(va(0x1007), &[1]).is_err());
    assert_eq!(v.faults().len(), 1);
    // Out-of-range is reported before fault injection.
    assert!(matches!(
        v.write64(va(1 << 20), 0),
        Err(VramError::OutOfRange { .. })
    ));
}

#[test]
#[cfg_attr(miri, ignore)] // miri has no SEEK_DATA/SEEK_HOLE
fn sparse_image_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vram.img");
    let size: u64 = 192 << 30;
    let mut v = SimVram::new(size).unwrap();
    v.write64(va(0), 0x1111).unwrap();
    v.write64(va(0x12_3456_7000), 0x2222).unwrap();
    v.write_bytes(va(size - 3), &[7, 8, 9]).unwrap();
    v.poke_bytes(0x5000, &[0u8; 16]); // nothing allocated
    v.save_image(&path).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), size);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // Three 4 KiB pages of data; allow generous file-system block overhead.
        assert!(
            meta.blocks() * 512 < 16 << 20,
            "image is not sparse: {} blocks",
            meta.blocks()
        );
    }
    let mut w = SimVram::load_image(&path).unwrap();
    assert_eq!(w.size(), size);
    assert_eq!(w.allocated_pages(), 3);
    assert_eq!(w.read64(va(0)).unwrap(), 0x1111);
    assert_eq!(w.read64(va(0x12_3456_7000)).unwrap(), 0x2222);
    let mut b = [0u8; 3];
    w.read_bytes(va(size - 3), &mut b).unwrap();
    assert_eq!(b, [7, 8, 9]);
}

#[test]
#[cfg_attr(miri, ignore)] // miri has no SEEK_DATA/SEEK_HOLE
fn image_of_dense_small_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dense.img");
    let mut data = vec![0u8; 3 * 4096 + 100];
    data[4096 * 2 + 5] = 0x42;
    data[3 * 4096 + 99] = 0x43;
    std::fs::write(&path, &data).unwrap();
    let v = SimVram::load_image(&path).unwrap();
    assert_eq!(v.size(), data.len() as u64);
    assert_eq!(v.allocated_pages(), 2);
    let mut back = vec![0u8; data.len()];
    assert!(v.peek_bytes(0, &mut back));
    assert_eq!(back, data);
}

#[derive(Clone, Debug)]
enum Op {
    W32(u64, u32),
    W64(u64, u64),
    Bulk(u64, Vec<u64>),
    Fill(u64, u64, u64),
    Bytes(u64, Vec<u8>),
}

const MODEL_SIZE: u64 = 1 << 14;

fn op() -> impl Strategy<Value = Op> {
    let addr = 0..MODEL_SIZE + 64;
    prop_oneof![
        (addr.clone(), any::<u32>()).prop_map(|(a, v)| Op::W32(a & !3, v)),
        (addr.clone(), any::<u64>()).prop_map(|(a, v)| Op::W64(a & !7, v)),
        (addr.clone(), proptest::collection::vec(any::<u64>(), 0..40))
            .prop_map(|(a, v)| Op::Bulk(a & !7, v)),
        (
            addr.clone(),
            prop_oneof![Just(0u64), any::<u64>()],
            0..100u64
        )
            .prop_map(|(a, v, n)| Op::Fill(a & !7, v, n)),
        (addr, proptest::collection::vec(any::<u8>(), 0..70)).prop_map(|(a, v)| Op::Bytes(a, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 64 }))]

    /// Random writes match a byte-level HashMap model; out-of-range writes change nothing.
    #[test]
    #[cfg_attr(miri, ignore)] // too slow under miri
    fn matches_hashmap_model(ops in proptest::collection::vec(op(), 1..40), slow in any::<bool>()) {
        let mut v = SimVram::new(MODEL_SIZE).unwrap();
        if slow {
            // A rule that never fires forces the word-by-word paths.
            v.add_fault(FaultRule::nth(0));
        }
        let mut model: HashMap<u64, u8> = HashMap::new();
        let put = |model: &mut HashMap<u64, u8>, a: u64, bytes: &[u8]| {
            for (i, b) in bytes.iter().enumerate() {
                model.insert(a + i as u64, *b);
            }
        };
        for o in ops {
            let (addr, bytes, r) = match o {
                Op::W32(a, x) => (a, x.to_le_bytes().to_vec(), v.write32(va(a), x)),
                Op::W64(a, x) => (a, x.to_le_bytes().to_vec(), v.write64(va(a), x)),
                Op::Bulk(a, ws) => {
                    let b: Vec<u8> = ws.iter().flat_map(|w| w.to_le_bytes()).collect();
                    (a, b, v.write_u64s(va(a), &ws))
                }
                Op::Fill(a, x, n) => {
                    let b: Vec<u8> = (0..n).flat_map(|_| x.to_le_bytes()).collect();
                    (a, b, v.fill_u64(va(a), x, n))
                }
                Op::Bytes(a, b) => {
                    let r = v.write_bytes(va(a), &b);
                    (a, b, r)
                }
            };
            let fits = addr + bytes.len() as u64 <= MODEL_SIZE;
            prop_assert_eq!(r.is_ok(), fits);
            if fits {
                put(&mut model, addr, &bytes);
            }
        }
        let mut all = vec![0u8; MODEL_SIZE as usize];
        prop_assert!(v.peek_bytes(0, &mut all));
        for (i, b) in all.iter().enumerate() {
            prop_assert_eq!(*b, model.get(&(i as u64)).copied().unwrap_or(0), "byte {:#x}", i);
        }
        for a in (0..MODEL_SIZE).step_by(8 * 13) {
            let mut want = [0u8; 8];
            for (i, w) in want.iter_mut().enumerate() {
                *w = model.get(&(a + i as u64)).copied().unwrap_or(0);
            }
            prop_assert_eq!(v.read64(va(a)).unwrap(), u64::from_le_bytes(want));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State machine: word accesses with fault-injection rules against a plain model.

mod state_machine {
    use proptest::prelude::*;
    use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

    use super::super::*;

    const SIZE: u64 = 4 * 4096;

    #[derive(Clone, Debug)]
    pub enum SmOp {
        W32(u64, u32),
        W64(u64, u64),
        Bulk(u64, Vec<u64>),
        Fill(u64, u64, u64),
        R64(u64),
        ReadBulk(u64, usize),
        AddRule(FaultRule),
        Clear,
    }

    #[derive(Clone, Debug)]
    pub struct Model {
        mem: Vec<u8>,
        rules: Vec<(FaultRule, u64)>,
        /// The outcome the last transition must have: the words read (empty for writes) or
        /// the error.
        last: Result<Vec<u64>, VramError>,
    }

    impl Model {
        /// One word access through the rules: every matching rule counts it; the first that
        /// fires gives the error.
        fn word(&mut self, addr: u64, len: u64, write: bool) -> Result<(), VramError> {
            let mut err = None;
            for (rule, seen) in &mut self.rules {
                let matches = match rule.ops {
                    FaultOps::Reads => !write,
                    FaultOps::Writes => write,
                    FaultOps::Both => true,
                };
                if !matches {
                    continue;
                }
                let fires = match rule.trigger {
                    FaultTrigger::Nth(n) => {
                        *seen += 1;
                        *seen == n
                    }
                    FaultTrigger::AfterN(n) => {
                        *seen += 1;
                        *seen > n
                    }
                    FaultTrigger::Range { start, end } => addr < end && start < addr + len,
                };
                if fires && err.is_none() {
                    err = Some(VramError::Backend(rule.code));
                }
            }
            err.map_or(Ok(()), Err)
        }

        fn put(&mut self, addr: u64, bytes: &[u8]) {
            self.mem[addr as usize..addr as usize + bytes.len()].copy_from_slice(bytes);
        }

        fn get64(&self, addr: u64) -> u64 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.mem[addr as usize..addr as usize + 8]);
            u64::from_le_bytes(b)
        }

        fn range(addr: u64, len: u64) -> Result<(), VramError> {
            if addr + len <= SIZE {
                Ok(())
            } else {
                Err(VramError::OutOfRange {
                    addr: VramAddress::new(addr),
                    len,
                })
            }
        }

        fn writes(&mut self, addr: u64, words: &[u64]) -> Result<Vec<u64>, VramError> {
            Self::range(addr, words.len() as u64 * 8)?;
            for (i, w) in words.iter().enumerate() {
                let a = addr + i as u64 * 8;
                self.word(a, 8, true)?;
                self.put(a, &w.to_le_bytes());
            }
            Ok(vec![])
        }

        fn reads(&mut self, addr: u64, n: usize) -> Result<Vec<u64>, VramError> {
            Self::range(addr, n as u64 * 8)?;
            let mut out = vec![];
            for i in 0..n as u64 {
                self.word(addr + i * 8, 8, false)?;
                out.push(self.get64(addr + i * 8));
            }
            Ok(out)
        }
    }

    fn rule() -> impl Strategy<Value = FaultRule> {
        let trigger = prop_oneof![
            (0u64..8).prop_map(FaultTrigger::Nth),
            (0u64..8).prop_map(FaultTrigger::AfterN),
            (0..SIZE, 1u64..64).prop_map(|(s, l)| FaultTrigger::Range {
                start: s,
                end: s + l
            }),
        ];
        let ops = prop_oneof![
            Just(FaultOps::Reads),
            Just(FaultOps::Writes),
            Just(FaultOps::Both)
        ];
        (trigger, ops, -20i32..-1).prop_map(|(trigger, ops, code)| FaultRule { trigger, ops, code })
    }

    pub struct Reference;

    impl ReferenceStateMachine for Reference {
        type State = Model;
        type Transition = SmOp;

        fn init_state() -> BoxedStrategy<Model> {
            Just(Model {
                mem: vec![0; SIZE as usize],
                rules: vec![],
                last: Ok(vec![]),
            })
            .boxed()
        }

        fn transitions(_: &Model) -> BoxedStrategy<SmOp> {
            let a8 = (0..SIZE / 8 + 2).prop_map(|w| w * 8);
            prop_oneof![
                (0..SIZE / 4 + 2, any::<u32>()).prop_map(|(w, v)| SmOp::W32(w * 4, v)),
                (a8.clone(), any::<u64>()).prop_map(|(a, v)| SmOp::W64(a, v)),
                (a8.clone(), proptest::collection::vec(any::<u64>(), 0..12))
                    .prop_map(|(a, v)| SmOp::Bulk(a, v)),
                (a8.clone(), any::<u64>(), 0u64..12).prop_map(|(a, v, n)| SmOp::Fill(a, v, n)),
                a8.clone().prop_map(SmOp::R64),
                (a8, 0usize..12).prop_map(|(a, n)| SmOp::ReadBulk(a, n)),
                rule().prop_map(SmOp::AddRule),
                Just(SmOp::Clear),
            ]
            .boxed()
        }

        fn apply(mut s: Model, t: &SmOp) -> Model {
            s.last = match t {
                SmOp::W32(a, v) => Model::range(*a, 4).and_then(|()| {
                    s.word(*a, 4, true)?;
                    s.put(*a, &v.to_le_bytes());
                    Ok(vec![])
                }),
                SmOp::W64(a, v) => s.writes(*a, &[*v]),
                SmOp::Bulk(a, ws) => s.writes(*a, ws),
                SmOp::Fill(a, v, n) => s.writes(*a, &vec![*v; *n as usize]),
                SmOp::R64(a) => s.reads(*a, 1),
                SmOp::ReadBulk(a, n) => s.reads(*a, *n),
                SmOp::AddRule(r) => {
                    s.rules.push((*r, 0));
                    Ok(vec![])
                }
                SmOp::Clear => {
                    s.rules.clear();
                    Ok(vec![])
                }
            };
            s
        }
    }

    pub struct Sut;

    impl StateMachineTest for Sut {
        type SystemUnderTest = SimVram;
        type Reference = Reference;

        fn init_test(_: &Model) -> SimVram {
            SimVram::new(SIZE).unwrap()
        }

        fn apply(mut v: SimVram, model: &Model, t: SmOp) -> SimVram {
            let at = VramAddress::new;
            let got: Result<Vec<u64>, VramError> = match t {
                SmOp::W32(a, x) => v.write32(at(a), x).map(|()| vec![]),
                SmOp::W64(a, x) => v.write64(at(a), x).map(|()| vec![]),
                SmOp::Bulk(a, ws) => v.write_u64s(at(a), &ws).map(|()| vec![]),
                SmOp::Fill(a, x, n) => v.fill_u64(at(a), x, n).map(|()| vec![]),
                SmOp::R64(a) => v.read64(at(a)).map(|x| vec![x]),
                SmOp::ReadBulk(a, n) => {
                    let mut out = vec![0; n];
                    v.read_u64s(at(a), &mut out).map(|()| out)
                }
                SmOp::AddRule(r) => {
                    v.add_fault(r);
                    Ok(vec![])
                }
                SmOp::Clear => {
                    v.clear_faults();
                    Ok(vec![])
                }
            };
            assert_eq!(got, model.last);
            v
        }

        fn check_invariants(v: &SimVram, model: &Model) {
            let mut all = vec![0u8; SIZE as usize];
            assert!(v.peek_bytes(0, &mut all));
            assert_eq!(all, model.mem);
        }
    }

    prop_state_machine! {
        #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 128 }))]
        #[test]
        fn vram_with_fault_rules_matches_model(sequential 1..40 => Sut);
    }
}
