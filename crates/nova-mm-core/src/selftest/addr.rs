//! Self-tests of [`crate::addr`]: page sizes, checked address arithmetic, alignment, formatting.

use super::support::{debugs_as, displays_as};
use super::SelfTestResult;
use crate::addr::{PageSize, Pfn, PhysAddr, VirtAddr, VramAddress, PAGE_BYTES};
use crate::st_ensure;

pub(crate) const TESTS: &[super::SelfTest] = crate::selftests!(
    "addr",
    [
        page_sizes_round_trip,
        page_size_known_answers,
        checked_add_sub_edges,
        offset_from,
        alignment,
        pfn_conversions,
        formatting,
        vram_to_phys,
    ]
);

fn page_sizes_round_trip() -> SelfTestResult {
    let mut prev = 0u64;
    for ps in PageSize::ALL {
        st_ensure!(PageSize::from_bytes(ps.bytes()) == Some(ps));
        st_ensure!(ps.bytes() > prev);
        st_ensure!(ps.bytes().is_power_of_two());
        prev = ps.bytes();
    }
    st_ensure!(PageSize::from_bytes(0).is_none());
    st_ensure!(PageSize::from_bytes(0x2000).is_none());
    st_ensure!(PageSize::from_bytes(0x1001).is_none());
    st_ensure!(PageSize::from_bytes(u64::MAX).is_none());
    Ok(())
}

fn page_size_known_answers() -> SelfTestResult {
    st_ensure!(PAGE_BYTES == 0x1000);
    st_ensure!(PageSize::Size4K.shift() == 12 && PageSize::Size4K.bytes() == 0x1000);
    st_ensure!(PageSize::Size64K.shift() == 16 && PageSize::Size64K.bytes() == 0x1_0000);
    st_ensure!(PageSize::Size2M.shift() == 21 && PageSize::Size2M.bytes() == 0x20_0000);
    st_ensure!(PageSize::Size512M.shift() == 29 && PageSize::Size512M.bytes() == 0x2000_0000);
    st_ensure!(PageSize::Size256G.shift() == 38 && PageSize::Size256G.bytes() == 0x40_0000_0000);
    Ok(())
}

fn checked_add_sub_edges() -> SelfTestResult {
    let a = VramAddress::new(u64::MAX - 1);
    st_ensure!(a.checked_add(1) == Some(VramAddress::new(u64::MAX)));
    st_ensure!(a.checked_add(2).is_none());
    st_ensure!(VramAddress::ZERO.checked_sub(1).is_none());
    st_ensure!(VirtAddr::new(0x1000).checked_sub(0x1000) == Some(VirtAddr::ZERO));
    st_ensure!(PhysAddr::new(u64::MAX).checked_add(0) == Some(PhysAddr::new(u64::MAX)));
    st_ensure!(VirtAddr::new(5).raw() == 5);
    Ok(())
}

fn offset_from() -> SelfTestResult {
    let a = VirtAddr::new(0x20_1000);
    st_ensure!(a.offset_from(VirtAddr::new(0x20_0000)) == Some(0x1000));
    st_ensure!(a.offset_from(a) == Some(0));
    st_ensure!(VirtAddr::new(0x1000).offset_from(a).is_none());
    Ok(())
}

fn alignment() -> SelfTestResult {
    st_ensure!(VramAddress::new(0x20_0000).is_aligned_to(0x20_0000));
    st_ensure!(VramAddress::ZERO.is_aligned_to(1));
    st_ensure!(!VramAddress::new(0x1000).is_aligned_to(0x2000));
    // Not a power of two: never aligned, and align_down leaves the address alone.
    st_ensure!(!VramAddress::new(0x3000).is_aligned_to(0x3000));
    st_ensure!(!VramAddress::new(0).is_aligned_to(0));
    st_ensure!(VramAddress::new(0x12345).align_down(0x1000) == VramAddress::new(0x12000));
    st_ensure!(VramAddress::new(0x12345).align_down(0x3000) == VramAddress::new(0x12345));
    st_ensure!(VirtAddr::new(u64::MAX).align_down(1 << 63) == VirtAddr::new(1 << 63));
    Ok(())
}

fn pfn_conversions() -> SelfTestResult {
    st_ensure!(VramAddress::new(0x5fff).pfn() == Pfn::new(5));
    st_ensure!(Pfn::new(5).checked_addr() == Some(0x5000));
    st_ensure!(Pfn::new(u64::MAX >> 12).checked_addr() == Some(0xffff_ffff_ffff_f000));
    st_ensure!(Pfn::new((u64::MAX >> 12) + 1).checked_addr().is_none());
    st_ensure!(Pfn::new(u64::MAX).checked_addr().is_none());
    st_ensure!(Pfn::new(7).raw() == 7);
    Ok(())
}

fn formatting() -> SelfTestResult {
    st_ensure!(displays_as(&VramAddress::new(0x1000), "0x1000"));
    st_ensure!(debugs_as(&VirtAddr::new(0xabc), "VirtAddr(0xabc)"));
    st_ensure!(debugs_as(&PhysAddr::ZERO, "PhysAddr(0x0)"));
    st_ensure!(debugs_as(&Pfn::new(0x10), "Pfn(0x10)"));
    st_ensure!(displays_as(&PageSize::Size64K, "64K"));
    st_ensure!(displays_as(&PageSize::Size256G, "256G"));
    st_ensure!(displays_as(
        &format_args!("{:x}", VramAddress::new(0xdead_beef)),
        "deadbeef"
    ));
    Ok(())
}

fn vram_to_phys() -> SelfTestResult {
    st_ensure!(PhysAddr::from(VramAddress::new(0x1234_5000)) == PhysAddr::new(0x1234_5000));
    Ok(())
}
