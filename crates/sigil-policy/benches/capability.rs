//! Capability checks against sets of 10, 100 and 1,000 patterns, with a baseline in the same
//! run: the same check done by trying each pattern in turn (the uncompiled matcher).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sigil_policy::{Capability, CapabilitySet, Pattern};
use std::hint::black_box;

/// A realistic mix: tool names, kv keys, paths with globs, hosts with ports.
fn patterns(n: usize) -> Vec<Pattern> {
    (0..n)
        .map(|i| {
            let text = match i % 6 {
                0 => format!("tool.plugin{i}.*"),
                1 => format!("kv.read:cache.{i}.*"),
                2 => format!("fs.read:/srv/app{i}/**"),
                3 => format!("fs.write:/var/lib/app{i}/*.db"),
                4 => format!("net.connect:api{i}.example.com:443"),
                _ => format!("messages.send.channel{i}"),
            };
            Pattern::parse(&text).unwrap()
        })
        .collect()
}

fn checks(c: &mut Criterion) {
    // One capability that matches a pattern deep in the set, one that matches none.
    let mut group = c.benchmark_group("capability_check");
    for n in [10usize, 100, 1000] {
        let pats = patterns(n);
        let set = CapabilitySet::new(pats.clone());
        let last_fs = (0..n).rev().find(|i| i % 6 == 2).unwrap();
        let hit = Capability::parse(&format!("fs.read:/srv/app{last_fs}/data/report.txt")).unwrap();
        let miss = Capability::parse("fs.read:/etc/shadow").unwrap();
        assert!(set.contains(&hit) && !set.contains(&miss));
        group.bench_with_input(BenchmarkId::new("compiled_hit", n), &hit, |b, cap| {
            b.iter(|| set.contains(black_box(cap)))
        });
        group.bench_with_input(BenchmarkId::new("compiled_miss", n), &miss, |b, cap| {
            b.iter(|| set.contains(black_box(cap)))
        });
        group.bench_with_input(
            BenchmarkId::new("baseline_linear_hit", n),
            &hit,
            |b, cap| b.iter(|| pats.iter().any(|p| p.matches(black_box(cap)))),
        );
    }
    group.finish();

    let mut group = c.benchmark_group("capability_parse");
    group.bench_function("parse_request", |b| {
        b.iter(|| Capability::parse(black_box("fs.read:/srv/app2/data/../report.txt")))
    });
    group.finish();
}

criterion_group!(benches, checks);
criterion_main!(benches);
