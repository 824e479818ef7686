//! VRAM buddy benchmarks, side by side with `buddy_system_allocator` 0.13's `FrameAllocator`
//! (the mainstream buddy crate with metadata off the managed range) in the same run.
//!
//! Whole-pool scenarios (80 GiB fill/drain, the two fragmentation phases, VK-CTS over 20 runs)
//! are timed directly, because one iteration is a whole experiment; steady-state operations go
//! through criterion with short measurement times (the machine is shared).
//!
//! Run: `cargo bench -p nova-mm-core --bench buddy`.

use std::alloc::Layout;
use std::hint::black_box;
use std::time::{Duration, Instant};

use buddy_system_allocator::FrameAllocator;
use criterion::Criterion;
use nova_mm_core::buddy::{
    metadata_bytes, AllocFlags, AllocMode, AllocRequest, Block, BlockSink, Buddy, BuddyParams,
};

const K4: u64 = 4096;
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// The peer's frame numbers start here (as in the reference measurement).
const PEER_BASE: usize = 1 << 32;

type Peer = FrameAllocator<33>;

/// A growable sink over a std vector.
#[derive(Default)]
struct Sink(Vec<Block>);

impl BlockSink for Sink {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn try_push(&mut self, b: Block) -> bool {
        self.0.push(b);
        true
    }
    fn get(&self, i: usize) -> Option<Block> {
        self.0.as_slice().get(i).copied()
    }
    fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }
}

/// splitmix64.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

struct Pool {
    storage: Vec<u64>,
    params: BuddyParams,
}

impl Pool {
    fn new(size: u64) -> Self {
        let params = BuddyParams {
            base_offset: 0,
            size,
            chunk_size: K4,
        };
        Self {
            storage: vec![0; Buddy::metadata_words(&params)],
            params,
        }
    }
    fn buddy(&mut self) -> Buddy<'_> {
        Buddy::with_storage(self.params, &mut self.storage).expect("init")
    }
}

fn peer(frames: usize) -> Peer {
    let mut p = Peer::new();
    p.add_frame(PEER_BASE, PEER_BASE + frames);
    p
}

fn req(mode: AllocMode, size: u64, min: u64) -> AllocRequest {
    AllocRequest::new(mode, size, min)
}

fn ns_per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[derive(Clone, Copy, Debug)]
enum Drain {
    Lifo,
    Fifo,
    Random,
}

fn order_of(offs: &mut [u64], d: Drain) {
    match d {
        Drain::Lifo => offs.reverse(),
        Drain::Fifo => {}
        Drain::Random => Rng(7).shuffle(offs),
    }
}

/// A vector of `n` offsets whose pages are already mapped, so the timed loops measure the
/// allocators and not the first-touch page faults of the result array (160 MiB at 80 GiB).
fn prefaulted(n: usize) -> Vec<u64> {
    vec![u64::MAX; n]
}

/// Fill `size` bytes with single-chunk allocations, then free in `d` order. Returns (alloc ns,
/// free ns) per operation. `request` allocates through `alloc_into` with an `AllocRequest` and
/// a sink (the general entry point); otherwise through `alloc_chunk`.
fn fill_drain_ours(pool: &mut Pool, d: Drain, request: bool) -> (f64, f64) {
    let mut b = pool.buddy();
    let n = (b.size() / K4) as usize;
    let r = req(AllocMode::Simple, K4, K4);
    let mut offs = prefaulted(n);
    let mut sink = Sink(Vec::with_capacity(4));
    let t = Instant::now();
    if request {
        for o in offs.iter_mut() {
            sink.0.clear();
            b.alloc_into(&r, &mut sink).unwrap();
            *o = sink.0[0].offset();
        }
    } else {
        for o in offs.iter_mut() {
            *o = b.alloc_chunk().unwrap().offset();
        }
    }
    let fill = t.elapsed();
    assert_eq!(b.avail(), 0);
    order_of(&mut offs, d);
    let t = Instant::now();
    for &o in &offs {
        b.free_at(black_box(o), 0, false).unwrap();
    }
    let drain = t.elapsed();
    assert_eq!(b.leak_report(), None);
    assert_eq!(b.free_count(b.max_order()), 1);
    (ns_per(fill, n), ns_per(drain, n))
}

fn fill_drain_peer(frames: usize, d: Drain) -> (f64, f64) {
    let mut p = peer(frames);
    let mut offs = prefaulted(frames);
    let t = Instant::now();
    for o in offs.iter_mut() {
        *o = p.alloc(1).unwrap() as u64;
    }
    let fill = t.elapsed();
    assert!(p.alloc(1).is_none());
    order_of(&mut offs, d);
    let t = Instant::now();
    for &o in &offs {
        p.dealloc(black_box(o as usize), 1);
    }
    let drain = t.elapsed();
    (ns_per(fill, frames), ns_per(drain, frames))
}

fn scenario_fill(size: u64) {
    let mut pool = Pool::new(size);
    let frames = (size / K4) as usize;
    println!(
        "\n## Fill {} GiB of 4 KiB chunks with single-chunk allocations, then drain (median of 5 interleaved repetitions; random: 1)",
        size / GIB
    );
    println!("| drain | ours alloc ns/op (alloc_chunk / alloc_into) | peer alloc ns/op | alloc ratio peer/ours | ours free ns/op | peer free ns/op | free ratio peer/ours |");
    println!("|---|---|---|---|---|---|---|");
    let reps = 5;
    for d in [Drain::Lifo, Drain::Fifo, Drain::Random] {
        let (mut o, mut q, mut p) = (Vec::new(), Vec::new(), Vec::new());
        // The peer's random drain takes minutes (its BTreeSets grow to millions of entries):
        // one repetition there.
        let reps = if matches!(d, Drain::Random) { 1 } else { reps };
        for _ in 0..reps {
            o.push(fill_drain_ours(&mut pool, d, false));
            q.push(fill_drain_ours(&mut pool, d, true));
            p.push(fill_drain_peer(frames, d));
        }
        let oa = median(o.iter().map(|x| x.0).collect());
        let qa = median(q.iter().map(|x| x.0).collect());
        let of = median(o.iter().chain(&q).map(|x| x.1).collect());
        let pa = median(p.iter().map(|x| x.0).collect());
        let pf = median(p.iter().map(|x| x.1).collect());
        println!(
            "| {d:?} | {oa:.1} / {qa:.1} | {pa:.1} | {:.2}x / {:.2}x | {of:.1} | {pf:.1} | {:.2}x |",
            pa / oa,
            pa / qa,
            pf / of
        );
    }
}

/// gpu_buddy_test's fragmentation_performance, both phases, at 4 GiB (ms per phase).
fn frag_phase1_ours(pool: &mut Pool) -> f64 {
    let n = 65_536;
    let mut b = pool.buddy();
    let mut s = Sink(Vec::with_capacity(n));
    let t = Instant::now();
    for _ in 0..n {
        b.alloc_into(&req(AllocMode::Simple, 8192, 65536), &mut s)
            .unwrap();
    }
    let pick = |keep: bool| -> Vec<Block> {
        s.0.iter()
            .enumerate()
            .filter(|(i, _)| (i % 4 == 0 || i % 4 == 3) == keep)
            .map(|(_, b)| *b)
            .collect()
    };
    let (cl, di) = (pick(true), pick(false));
    b.free_blocks(&cl, true).unwrap();
    b.free_blocks(&di, false).unwrap();
    let mut s2 = Sink(Vec::with_capacity(n));
    for _ in 0..n {
        b.alloc_into(&req(AllocMode::Simple, 65536, 65536), &mut s2)
            .unwrap();
    }
    b.free_blocks(&s2.0, false).unwrap();
    let ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(b.leak_report(), None);
    ms
}

fn frag_phase2_ours(pool: &mut Pool) -> f64 {
    let n = 65_536;
    let mut b = pool.buddy();
    let mut s = Sink(Vec::with_capacity(n));
    let t = Instant::now();
    for _ in 0..n {
        b.alloc_into(&req(AllocMode::Simple, 8192, 65536), &mut s)
            .unwrap();
    }
    let even: Vec<Block> = s.0.iter().copied().step_by(2).collect();
    let odd_rev: Vec<Block> = s.0.iter().copied().skip(1).step_by(2).rev().collect();
    b.free_blocks(&even, true).unwrap();
    b.free_blocks(&odd_rev, true).unwrap();
    let ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(b.leak_report(), None);
    ms
}

/// The peer has no offset-aligned allocation: `alloc_aligned(8K, 64K)` takes a 64 KiB block.
fn frag_phase1_peer() -> f64 {
    let n = 65_536;
    let mut p = peer((4 * GIB / K4) as usize);
    let small = Layout::from_size_align(2, 16).unwrap();
    let big = Layout::from_size_align(16, 16).unwrap();
    let t = Instant::now();
    let v: Vec<usize> = (0..n).map(|_| p.alloc_aligned(small).unwrap()).collect();
    for (i, f) in v.iter().enumerate() {
        if i % 4 == 0 || i % 4 == 3 {
            p.dealloc_aligned(*f, small);
        }
    }
    for (i, f) in v.iter().enumerate() {
        if !(i % 4 == 0 || i % 4 == 3) {
            p.dealloc_aligned(*f, small);
        }
    }
    let w: Vec<usize> = (0..n).map(|_| p.alloc_aligned(big).unwrap()).collect();
    for f in w {
        p.dealloc_aligned(f, big);
    }
    t.elapsed().as_secs_f64() * 1e3
}

fn frag_phase2_peer() -> f64 {
    let n = 65_536;
    let mut p = peer((4 * GIB / K4) as usize);
    let small = Layout::from_size_align(2, 16).unwrap();
    let t = Instant::now();
    let v: Vec<usize> = (0..n).map(|_| p.alloc_aligned(small).unwrap()).collect();
    for f in v.iter().step_by(2) {
        p.dealloc_aligned(*f, small);
    }
    for f in v.iter().skip(1).step_by(2).rev() {
        p.dealloc_aligned(*f, small);
    }
    t.elapsed().as_secs_f64() * 1e3
}

fn scenario_frag() {
    let mut pool = Pool::new(4 * GIB);
    let reps = 5;
    let o1 = median((0..reps).map(|_| frag_phase1_ours(&mut pool)).collect());
    let o2 = median((0..reps).map(|_| frag_phase2_ours(&mut pool)).collect());
    let p1 = median((0..reps).map(|_| frag_phase1_peer()).collect());
    let p2 = median((0..reps).map(|_| frag_phase2_peer()).collect());
    println!("\n## fragmentation_performance at 4 GiB, 65,536 allocations (median of {reps})");
    println!("| phase | ours ms | peer ms | ratio peer/ours |");
    println!("|---|---|---|---|");
    println!("| 1 | {o1:.2} | {p1:.2} | {:.2}x |", p1 / o1);
    println!("| 2 | {o2:.2} | {p2:.2} | {:.2}x |", p2 / o2);
}

/// VK-CTS `size_8KiB.reverse.count_4000`: 4000 × 8 KiB at 256 KiB alignment, freed in reverse, 20
/// runs on one allocator. The whole 20-run experiment is repeated on fresh allocators and each
/// run's median is reported, because single ~1 ms runs are at the mercy of the shared machine.
fn vkcts_ours(pool: &mut Pool, cleared_every_other: bool) -> (Vec<f64>, u64) {
    let mut b = pool.buddy();
    let r = req(AllocMode::Simple, 8192, 256 * 1024);
    let mut runs = Vec::new();
    let mut s = Sink(Vec::with_capacity(4000));
    for run in 0..20 {
        s.0.clear();
        let t = Instant::now();
        for _ in 0..4000 {
            b.alloc_into(&r, &mut s).unwrap();
        }
        for blk in s.0.iter().rev() {
            b.free_blocks(
                std::slice::from_ref(blk),
                cleared_every_other && run % 2 == 0,
            )
            .unwrap();
        }
        runs.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let max_free = (0..=b.max_order()).map(|k| b.free_count(k)).max().unwrap();
    (runs, max_free)
}

fn vkcts_peer() -> Vec<f64> {
    let mut p = peer((4 * GIB / K4) as usize);
    let l = Layout::from_size_align(2, 64).unwrap();
    let mut runs = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let v: Vec<usize> = (0..4000).map(|_| p.alloc_aligned(l).unwrap()).collect();
        for f in v.iter().rev() {
            p.dealloc_aligned(*f, l);
        }
        runs.push(t.elapsed().as_secs_f64() * 1e6);
    }
    runs
}

fn scenario_vkcts() {
    let mut pool = Pool::new(4 * GIB);
    let reps = 7;
    let per_run = |all: &[Vec<f64>], i: usize| median(all.iter().map(|r| r[i]).collect());
    println!("\n## VK-CTS 4000 x 8 KiB @ 256 KiB, reverse-freed, 20 runs on one 4 GiB allocator (per-run median of {reps} experiments)");
    println!("| | run 1 µs | run 2 µs | run 10 µs | run 20 µs | max per-order free count after 20 runs |");
    println!("|---|---|---|---|---|---|");
    for cleared in [false, true] {
        let mut all = Vec::new();
        let mut mf = 0;
        for _ in 0..reps {
            let (r, m) = vkcts_ours(&mut pool, cleared);
            all.push(r);
            mf = mf.max(m);
        }
        let name = if cleared {
            "ours, every other run freed CLEARED"
        } else {
            "ours, dirty frees"
        };
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {mf} |",
            per_run(&all, 0),
            per_run(&all, 1),
            per_run(&all, 9),
            per_run(&all, 19)
        );
    }
    let all: Vec<Vec<f64>> = (0..reps).map(|_| vkcts_peer()).collect();
    println!(
        "| peer (alloc_aligned takes 256 KiB per 8 KiB) | {:.1} | {:.1} | {:.1} | {:.1} | - |",
        per_run(&all, 0),
        per_run(&all, 1),
        per_run(&all, 9),
        per_run(&all, 19)
    );
}

fn scenario_metadata() {
    println!("\n## Metadata");
    println!("| pool | chunks | bytes | bytes/chunk |");
    println!("|---|---|---|---|");
    for g in [80u64, 192] {
        let bytes = metadata_bytes(g * GIB, K4);
        let chunks = g * GIB / K4;
        println!(
            "| {g} GiB / 4 KiB | {chunks} | {bytes} ({:.2} MiB) | {:.3} |",
            bytes as f64 / MIB as f64,
            bytes as f64 / chunks as f64
        );
    }
}

fn crit(c: &mut Criterion) {
    // Warm single-chunk alloc/free, with one persistent chunk so the split path stays.
    {
        let mut pool = Pool::new(80 * GIB);
        let mut b = pool.buddy();
        let r = req(AllocMode::Simple, K4, K4);
        let mut s = Sink(Vec::with_capacity(4));
        b.alloc_into(&r, &mut s).unwrap();
        let mut g = c.benchmark_group("single_chunk_warm");
        g.bench_function("ours_alloc_chunk_free_at", |bn| {
            bn.iter(|| {
                let x = b.alloc_chunk().unwrap();
                b.free_at(black_box(x.offset()), 0, false).unwrap();
            })
        });
        g.bench_function("ours_alloc_into_free_at", |bn| {
            bn.iter(|| {
                s.0.truncate(1);
                b.alloc_into(black_box(&r), &mut s).unwrap();
                let x = s.0[1];
                b.free_at(black_box(x.offset()), 0, false).unwrap();
            })
        });
        let mut p = peer((80 * GIB / K4) as usize);
        let _keep = p.alloc(1).unwrap();
        g.bench_function("peer_alloc_dealloc", |bn| {
            bn.iter(|| {
                let f = p.alloc(black_box(1)).unwrap();
                p.dealloc(black_box(f), 1);
            })
        });
        g.finish();
    }
    // Log-uniform 4 KiB..256 MiB with min 4K/64K/2M on 16 GiB, steady state around 8 GiB live.
    for min in [K4, 64 * 1024, 2 * MIB] {
        let mut rng = Rng(min);
        let sizes: Vec<u64> = (0..4096)
            .map(|_| {
                let e = 12.0 + (rng.next() % 1_000_000) as f64 / 1_000_000.0 * 16.0;
                ((2f64.powf(e) as u64).div_ceil(K4) * K4).max(K4)
            })
            .collect();
        let mut g = c.benchmark_group(format!("log_uniform_min_{}K", min / 1024));
        let mut pool = Pool::new(16 * GIB);
        let mut b = pool.buddy();
        let mut live: std::collections::VecDeque<(Vec<Block>, u64)> = Default::default();
        let mut used = 0u64;
        let mut i = 0;
        g.bench_function("ours_alloc_free", |bn| {
            bn.iter(|| {
                let size = sizes[i % sizes.len()];
                i += 1;
                let mut s = Sink(Vec::new());
                b.alloc_into(&req(AllocMode::Simple, size, min), &mut s)
                    .unwrap();
                used += size;
                live.push_back((s.0, size));
                while used > 8 * GIB {
                    let (blk, sz) = live.pop_front().unwrap();
                    b.free_blocks(&blk, false).unwrap();
                    used -= sz;
                }
            })
        });
        let mut p = peer((16 * GIB / K4) as usize);
        let mut live: std::collections::VecDeque<(usize, Layout, u64)> = Default::default();
        let mut used = 0u64;
        let mut i = 0;
        g.bench_function("peer_alloc_free", |bn| {
            bn.iter(|| {
                let size = sizes[i % sizes.len()];
                i += 1;
                let l = Layout::from_size_align((size / K4) as usize, (min / K4) as usize).unwrap();
                let f = p.alloc_aligned(l).unwrap();
                used += size;
                live.push_back((f, l, size));
                while used > 8 * GIB {
                    let (f, l, sz) = live.pop_front().unwrap();
                    p.dealloc_aligned(f, l);
                    used -= sz;
                }
            })
        });
        g.finish();
    }
    // Contiguous non-power-of-two.
    {
        let mut g = c.benchmark_group("contiguous");
        let mut pool = Pool::new(16 * GIB);
        let mut b = pool.buddy();
        let mut s = Sink(Vec::new());
        b.alloc_into(&req(AllocMode::Simple, K4, K4), &mut s)
            .unwrap();
        let r3 = req(AllocMode::Simple, 3 * K4, K4).with_flags(AllocFlags::CONTIGUOUS);
        g.bench_function("ours_3_pages", |bn| {
            bn.iter(|| {
                let mut s = Sink(Vec::with_capacity(4));
                b.alloc_into(black_box(&r3), &mut s).unwrap();
                b.free_blocks(&s.0, false).unwrap();
            })
        });
        let mut p = peer((16 * GIB / K4) as usize);
        let _keep = p.alloc(1).unwrap();
        g.bench_function("peer_3_pages_rounded_to_4", |bn| {
            bn.iter(|| {
                let f = p.alloc(black_box(3)).unwrap();
                p.dealloc(f, 3);
            })
        });
        let mut pool10 = Pool::new(10 * GIB);
        let mut b10 = pool10.buddy();
        let r9 = req(AllocMode::Simple, 9 * GIB, K4).with_flags(AllocFlags::CONTIGUOUS);
        g.bench_function("ours_9G_on_10G", |bn| {
            bn.iter(|| {
                let mut s = Sink(Vec::with_capacity(4));
                b10.alloc_into(black_box(&r9), &mut s).unwrap();
                b10.free_blocks(&s.0, false).unwrap();
            })
        });
        g.finish();
    }
    // Range in the first 256 MiB with the rest fragmented (every other 64 KiB held), and
    // top-down, on 4 GiB.
    {
        let mut g = c.benchmark_group("placement");
        let mut pool = Pool::new(4 * GIB);
        let mut b = pool.buddy();
        let mut held = Sink(Vec::new());
        let mut off = 256 * MIB;
        while off < 4 * GIB {
            let r = req(
                AllocMode::Range {
                    start: off,
                    end: off + 64 * 1024,
                },
                64 * 1024,
                K4,
            );
            b.alloc_into(&r, &mut held).unwrap();
            off += 128 * 1024;
        }
        let rr = req(
            AllocMode::Range {
                start: 0,
                end: 256 * MIB,
            },
            64 * 1024,
            K4,
        );
        g.bench_function("ours_range_64K_in_first_256M", |bn| {
            bn.iter(|| {
                let mut s = Sink(Vec::with_capacity(4));
                b.alloc_into(black_box(&rr), &mut s).unwrap();
                b.free_blocks(&s.0, false).unwrap();
            })
        });
        let rt = req(AllocMode::TopDown, 64 * 1024, K4);
        g.bench_function("ours_topdown_64K", |bn| {
            bn.iter(|| {
                let mut s = Sink(Vec::with_capacity(4));
                b.alloc_into(black_box(&rt), &mut s).unwrap();
                b.free_blocks(&s.0, false).unwrap();
            })
        });
        let rs = req(AllocMode::Simple, 64 * 1024, K4);
        g.bench_function("ours_simple_64K", |bn| {
            bn.iter(|| {
                let mut s = Sink(Vec::with_capacity(4));
                b.alloc_into(black_box(&rs), &mut s).unwrap();
                b.free_blocks(&s.0, false).unwrap();
            })
        });
        g.finish();
    }
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    if filter.iter().any(|f| f == "profile-fill") {
        // Profiling aid: only our fill/drain.
        let mut pool = Pool::new(80 * GIB);
        for d in [Drain::Lifo, Drain::Fifo] {
            println!(
                "{d:?} alloc_chunk {:?}",
                fill_drain_ours(&mut pool, d, false)
            );
            println!("{d:?} alloc_into {:?}", fill_drain_ours(&mut pool, d, true));
        }
        return;
    }
    if filter.iter().any(|f| f == "profile-frag") {
        let mut pool = Pool::new(4 * GIB);
        for _ in 0..5 {
            println!(
                "phase 1 {:.2} ms, phase 2 {:.2} ms",
                frag_phase1_ours(&mut pool),
                frag_phase2_ours(&mut pool)
            );
        }
        return;
    }
    if filter.iter().any(|f| f == "profile-peer") {
        for d in [Drain::Lifo, Drain::Fifo] {
            println!("{d:?} {:?}", fill_drain_peer((80 * GIB / K4) as usize, d));
        }
        return;
    }
    if want("scenarios") {
        scenario_metadata();
        scenario_fill(80 * GIB);
        scenario_frag();
        scenario_vkcts();
    }
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    crit(&mut c);
    c.final_summary();
}
