//! Self-tests of [`crate::tlb`]: the `INVALIDATE` field encodings, cache-level cover, the request
//! constant, forwarding through `&mut`, and error messages.

use super::support::{displays_as, RecordingTlb};
use super::SelfTestResult;
use crate::addr::VirtAddr;
use crate::st_ensure;
use crate::tlb::{
    AckMode, CacheLevel, InvalidateRequest, PdbAperture, PdbTarget, TlbError, TlbInvalidate,
    VaScope,
};

pub(crate) const TESTS: &[super::SelfTest] = crate::selftests!(
    "tlb",
    [
        cache_level_encodings,
        cache_level_for_pde_levels,
        cache_level_cover,
        ack_encodings,
        everything_request,
        invalidate_forwarding_and_errors,
        error_messages,
    ]
);

const LEVELS: [CacheLevel; 7] = [
    CacheLevel::All,
    CacheLevel::PteOnly,
    CacheLevel::UpToPde0,
    CacheLevel::UpToPde1,
    CacheLevel::UpToPde2,
    CacheLevel::UpToPde3,
    CacheLevel::UpToPde4,
];

fn cache_level_encodings() -> SelfTestResult {
    let mut expected = 0u32;
    for l in LEVELS {
        st_ensure!(l.bits() == expected);
        // The field is bits 26:24: three bits.
        st_ensure!(l.bits() < 8);
        expected = expected.wrapping_add(1);
    }
    Ok(())
}

fn cache_level_for_pde_levels() -> SelfTestResult {
    st_ensure!(CacheLevel::up_to_pde(0) == Some(CacheLevel::UpToPde0));
    st_ensure!(CacheLevel::up_to_pde(1) == Some(CacheLevel::UpToPde1));
    st_ensure!(CacheLevel::up_to_pde(2) == Some(CacheLevel::UpToPde2));
    st_ensure!(CacheLevel::up_to_pde(3) == Some(CacheLevel::UpToPde3));
    st_ensure!(CacheLevel::up_to_pde(4) == Some(CacheLevel::UpToPde4));
    st_ensure!(CacheLevel::up_to_pde(5).is_none());
    st_ensure!(CacheLevel::up_to_pde(u32::MAX).is_none());
    Ok(())
}

fn cache_level_cover() -> SelfTestResult {
    for a in LEVELS {
        st_ensure!(a.covers(a));
        st_ensure!(CacheLevel::All.covers(a));
        st_ensure!(a == CacheLevel::All || !a.covers(CacheLevel::All));
        for b in LEVELS {
            if a != CacheLevel::All && b != CacheLevel::All {
                st_ensure!(a.covers(b) == (a.bits() >= b.bits()));
            }
        }
    }
    st_ensure!(CacheLevel::UpToPde1.covers(CacheLevel::PteOnly));
    st_ensure!(!CacheLevel::PteOnly.covers(CacheLevel::UpToPde0));
    Ok(())
}

fn ack_encodings() -> SelfTestResult {
    st_ensure!(AckMode::None.bits() == 0);
    st_ensure!(AckMode::Globally.bits() == 1);
    st_ensure!(AckMode::Intranode.bits() == 2);
    Ok(())
}

fn everything_request() -> SelfTestResult {
    let r = InvalidateRequest::EVERYTHING;
    st_ensure!(r.pdb == PdbTarget::All);
    st_ensure!(r.va == VaScope::All);
    st_ensure!(!r.hub_tlb_only);
    st_ensure!(r.cache_level == CacheLevel::All);
    st_ensure!(r.ack == AckMode::Globally);
    Ok(())
}

fn invalidate_forwarding_and_errors() -> SelfTestResult {
    fn through(t: &mut dyn TlbInvalidate, req: &InvalidateRequest) -> Result<(), TlbError> {
        let mut r = t;
        (&mut r).invalidate(req)
    }
    let req = InvalidateRequest {
        pdb: PdbTarget::One {
            addr: 0x20_0000,
            aperture: PdbAperture::Vidmem,
        },
        va: VaScope::Range {
            start: VirtAddr::new(0x1_0000),
            size: 0x1000,
        },
        hub_tlb_only: true,
        cache_level: CacheLevel::PteOnly,
        ack: AckMode::None,
    };
    let mut tlb = RecordingTlb::default();
    st_ensure!(through(&mut tlb, &req).is_ok());
    st_ensure!(tlb.calls == 1 && tlb.last == Some(req));
    tlb.fail_with = Some(TlbError::Timeout);
    st_ensure!(through(&mut tlb, &InvalidateRequest::EVERYTHING) == Err(TlbError::Timeout));
    st_ensure!(tlb.calls == 2 && tlb.last == Some(InvalidateRequest::EVERYTHING));
    Ok(())
}

fn error_messages() -> SelfTestResult {
    st_ensure!(displays_as(&TlbError::Timeout, "TLB invalidate timed out"));
    st_ensure!(displays_as(&TlbError::DeviceGone, "the GPU is gone"));
    st_ensure!(displays_as(
        &TlbError::Unsupported,
        "TLB invalidate request not supported by the hardware"
    ));
    st_ensure!(displays_as(
        &TlbError::Backend(-19),
        "TLB backend error -19"
    ));
    Ok(())
}
