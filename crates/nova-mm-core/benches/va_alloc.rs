//! VA allocator against a naive sorted-Vec first fit, on a fragmented space.
//!
//! `n` one-page reservations separated by one-page holes; each iteration allocates two pages
//! (which only fit after the last reservation, the worst case for a linear scan) and frees them.
//! Run with `cargo bench -p nova-mm-core --bench va_alloc`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use nova_mm_core::va_alloc::{VaAllocator, VaNode, VaRange};
use nova_mm_core::VirtAddr;

const G: u64 = 0x1000;

/// The naive baseline: sorted `(start, end)` pairs and a linear first-fit scan.
struct Naive(Vec<(u64, u64)>, u64);

impl Naive {
    fn alloc(&mut self, size: u64) -> Option<u64> {
        let mut prev = 0;
        let mut pos = self.0.len();
        for (i, &(s, e)) in self.0.iter().enumerate() {
            if s - prev >= size {
                pos = i;
                break;
            }
            prev = e;
        }
        if pos == self.0.len() && self.1 - prev < size {
            return None;
        }
        self.0.insert(pos, (prev, prev + size));
        Some(prev)
    }
    fn free(&mut self, start: u64) {
        if let Ok(i) = self.0.binary_search_by_key(&start, |x| x.0) {
            self.0.remove(i);
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("va_alloc_fragmented");
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
    group.sample_size(20);
    for n in [1_000u64, 100_000] {
        let mut slab = vec![VaNode::EMPTY; n as usize + 4];
        let mut tree =
            VaAllocator::new(&mut slab[..], VirtAddr::ZERO, VirtAddr::new(1 << 47), G).unwrap();
        let mut naive = Naive(Vec::new(), 1 << 47);
        for i in 0..n {
            let r = VaRange::new(VirtAddr::new(2 * i * G), G).unwrap();
            tree.reserve(r).unwrap();
            naive.0.push((2 * i * G, 2 * i * G + G));
        }
        group.bench_with_input(BenchmarkId::new("tree", n), &n, |b, _| {
            b.iter(|| {
                let r = tree.alloc(black_box(2 * G), G).unwrap();
                tree.free(r).unwrap();
            })
        });
        group.bench_with_input(BenchmarkId::new("naive", n), &n, |b, _| {
            b.iter(|| {
                let s = naive.alloc(black_box(2 * G)).unwrap();
                naive.free(s);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
