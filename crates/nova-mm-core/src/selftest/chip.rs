//! Self-tests of [`crate::chip`]: MMU versions, page-size gating, field widths, names.

use super::SelfTestResult;
use crate::addr::PageSize;
use crate::chip::{Chip, MmuVersion, UnknownName};
use crate::st_ensure;

pub(crate) const TESTS: &[super::SelfTest] = crate::selftests!(
    "chip",
    [
        mmu_versions,
        page_size_gating,
        largest_page_sizes,
        comptagline_and_no_ats,
        names_round_trip,
        parse_aliases_and_errors,
    ]
);

fn mmu_versions() -> SelfTestResult {
    for c in [
        Chip::Pascal,
        Chip::Volta,
        Chip::Turing,
        Chip::Ampere,
        Chip::Ada,
    ] {
        st_ensure!(c.mmu_version() == MmuVersion::V2);
    }
    for c in [Chip::Hopper, Chip::BlackwellGb10x, Chip::BlackwellGb20x] {
        st_ensure!(c.mmu_version() == MmuVersion::V3);
    }
    st_ensure!(MmuVersion::V2.va_bits() == 49 && MmuVersion::V3.va_bits() == 57);
    st_ensure!(MmuVersion::V2.name() == "v2" && MmuVersion::V3.name() == "v3");
    Ok(())
}

fn page_size_gating() -> SelfTestResult {
    for c in Chip::ALL {
        st_ensure!(c.supports_page_size(PageSize::Size4K));
        st_ensure!(c.supports_page_size(PageSize::Size64K));
        st_ensure!(c.supports_page_size(PageSize::Size2M));
        let pre_ampere = matches!(c, Chip::Pascal | Chip::Volta | Chip::Turing);
        st_ensure!(c.supports_page_size(PageSize::Size512M) != pre_ampere);
        let blackwell = matches!(c, Chip::BlackwellGb10x | Chip::BlackwellGb20x);
        st_ensure!(c.supports_page_size(PageSize::Size256G) == blackwell);
    }
    Ok(())
}

fn largest_page_sizes() -> SelfTestResult {
    st_ensure!(Chip::Pascal.largest_page_size() == PageSize::Size2M);
    st_ensure!(Chip::Turing.largest_page_size() == PageSize::Size2M);
    st_ensure!(Chip::Ampere.largest_page_size() == PageSize::Size512M);
    st_ensure!(Chip::Ada.largest_page_size() == PageSize::Size512M);
    st_ensure!(Chip::Hopper.largest_page_size() == PageSize::Size512M);
    st_ensure!(Chip::BlackwellGb10x.largest_page_size() == PageSize::Size256G);
    st_ensure!(Chip::BlackwellGb20x.largest_page_size() == PageSize::Size256G);
    Ok(())
}

fn comptagline_and_no_ats() -> SelfTestResult {
    st_ensure!(Chip::Pascal.comptagline_bits() == 18 && Chip::Volta.comptagline_bits() == 18);
    st_ensure!(Chip::Turing.comptagline_bits() == 20 && Chip::Ada.comptagline_bits() == 20);
    st_ensure!(Chip::Hopper.comptagline_bits() == 0);
    st_ensure!(!Chip::Pascal.has_no_ats());
    st_ensure!(Chip::Volta.has_no_ats() && Chip::BlackwellGb20x.has_no_ats());
    Ok(())
}

fn names_round_trip() -> SelfTestResult {
    let mut prev: Option<Chip> = None;
    for c in Chip::ALL {
        st_ensure!(c.name().parse::<Chip>() == Ok(c));
        st_ensure!(super::support::displays_as(&c, c.name()));
        st_ensure!(prev.is_none_or(|p| p < c));
        prev = Some(c);
    }
    for v in [MmuVersion::V2, MmuVersion::V3] {
        st_ensure!(v.name().parse::<MmuVersion>() == Ok(v));
    }
    Ok(())
}

fn parse_aliases_and_errors() -> SelfTestResult {
    st_ensure!("TU102".parse::<Chip>() == Ok(Chip::Turing));
    st_ensure!("Blackwell".parse::<Chip>() == Ok(Chip::BlackwellGb20x));
    st_ensure!("gb100".parse::<Chip>() == Ok(Chip::BlackwellGb10x));
    st_ensure!("gh100".parse::<Chip>() == Ok(Chip::Hopper));
    st_ensure!("".parse::<Chip>() == Err(UnknownName));
    st_ensure!("kepler".parse::<Chip>() == Err(UnknownName));
    st_ensure!("3".parse::<MmuVersion>() == Ok(MmuVersion::V3));
    st_ensure!("v4".parse::<MmuVersion>() == Err(UnknownName));
    st_ensure!(super::support::displays_as(
        &UnknownName,
        "unknown chip or MMU version name"
    ));
    Ok(())
}
