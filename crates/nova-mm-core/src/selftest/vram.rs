//! Self-tests of [`crate::vram`]: `check_access` and the default methods of [`VramAccess`], run
//! over [`SliceVram`] (VRAM in a stack array, only the 32-bit accesses implemented).

use super::support::{displays_as, SliceVram};
use super::SelfTestResult;
use crate::addr::VramAddress;
use crate::st_ensure;
use crate::vram::{check_access, VramAccess, VramError};

pub(crate) const TESTS: &[super::SelfTest] = crate::selftests!(
    "vram",
    [
        check_access_edges,
        write64_is_little_endian_low_half_first,
        read64_round_trip,
        misaligned_and_out_of_range_single,
        bulk_round_trip,
        rejected_bulk_writes_nothing,
        fill_checked_before_writing,
        backend_errors_propagate,
        forwarding_through_mut_ref,
        error_messages,
    ]
);

const fn va(raw: u64) -> VramAddress {
    VramAddress::new(raw)
}

fn check_access_edges() -> SelfTestResult {
    st_ensure!(check_access(va(0), 64, 8, 64).is_ok());
    st_ensure!(check_access(va(64), 0, 8, 64).is_ok());
    st_ensure!(
        check_access(va(56), 16, 8, 64)
            == Err(VramError::OutOfRange {
                addr: va(56),
                len: 16
            })
    );
    st_ensure!(
        check_access(va(4), 8, 8, 64)
            == Err(VramError::Misaligned {
                addr: va(4),
                align: 8
            })
    );
    st_ensure!(matches!(
        check_access(va(0xffff_ffff_ffff_fff8), 16, 8, u64::MAX),
        Err(VramError::OutOfRange { .. })
    ));
    // A non-power-of-two alignment can never be met.
    st_ensure!(matches!(
        check_access(va(0), 4, 3, 64),
        Err(VramError::Misaligned { .. })
    ));
    Ok(())
}

fn write64_is_little_endian_low_half_first() -> SelfTestResult {
    let mut mem = [0u32; 16];
    let mut v = SliceVram::new(&mut mem);
    // Only the low half may be written when the second access fails.
    v.fail_after = Some(1);
    st_ensure!(v.write64(va(8), 0x1122_3344_5566_7788) == Err(VramError::Backend(-5)));
    st_ensure!(v.words().get(2..4) == Some(&[0x5566_7788, 0][..]));
    v.fail_after = None;
    st_ensure!(v.write64(va(8), 0x1122_3344_5566_7788).is_ok());
    st_ensure!(v.words().get(2..4) == Some(&[0x5566_7788, 0x1122_3344][..]));
    Ok(())
}

fn read64_round_trip() -> SelfTestResult {
    let mut mem = [0u32; 16];
    let mut v = SliceVram::new(&mut mem);
    for (i, value) in [0u64, 1, u64::MAX, 0x8000_0000_0000_0001]
        .into_iter()
        .enumerate()
    {
        let addr = va(u64::try_from(i).map_err(|_| "index")?.wrapping_mul(8));
        st_ensure!(v.write64(addr, value).is_ok());
        st_ensure!(v.read64(addr) == Ok(value));
    }
    st_ensure!(v.size() == 64);
    Ok(())
}

fn misaligned_and_out_of_range_single() -> SelfTestResult {
    let mut mem = [0u32; 16];
    let mut v = SliceVram::new(&mut mem);
    st_ensure!(
        v.read64(va(4))
            == Err(VramError::Misaligned {
                addr: va(4),
                align: 8
            })
    );
    st_ensure!(
        v.write64(va(60), 1)
            == Err(VramError::Misaligned {
                addr: va(60),
                align: 8
            })
    );
    st_ensure!(
        v.read64(va(64))
            == Err(VramError::OutOfRange {
                addr: va(64),
                len: 8
            })
    );
    st_ensure!(
        v.read32(va(2))
            == Err(VramError::Misaligned {
                addr: va(2),
                align: 4
            })
    );
    st_ensure!(
        v.write32(va(64), 0)
            == Err(VramError::OutOfRange {
                addr: va(64),
                len: 4
            })
    );
    st_ensure!(v.read64(va(0xffff_ffff_ffff_fff8)).is_err());
    st_ensure!(v.accesses == 0);
    st_ensure!(v.words().iter().all(|&w| w == 0));
    Ok(())
}

fn bulk_round_trip() -> SelfTestResult {
    let mut mem = [0u32; 16];
    let mut v = SliceVram::new(&mut mem);
    let words = [1u64, 2, 0xffff_ffff_0000_0000, 4];
    st_ensure!(v.write_u64s(va(16), &words).is_ok());
    let mut out = [0u64; 4];
    st_ensure!(v.read_u64s(va(16), &mut out).is_ok());
    st_ensure!(out == words);
    st_ensure!(v.words().get(8..10) == Some(&[0, 0xffff_ffff][..]));
    // Empty runs are fine anywhere in range, even at the end.
    st_ensure!(v.write_u64s(va(64), &[]).is_ok());
    st_ensure!(v.read_u64s(va(64), &mut []).is_ok());
    Ok(())
}

fn rejected_bulk_writes_nothing() -> SelfTestResult {
    let mut mem = [0u32; 16];
    let mut v = SliceVram::new(&mut mem);
    st_ensure!(matches!(
        v.write_u64s(va(48), &[1, 2, 3]),
        Err(VramError::OutOfRange { .. })
    ));
    st_ensure!(matches!(
        v.write_u64s(va(4), &[1]),
        Err(VramError::Misaligned { .. })
    ));
    let mut out = [7u64; 3];
    st_ensure!(matches!(
        v.read_u64s(va(48), &mut out),
        Err(VramError::OutOfRange { .. })
    ));
    st_ensure!(out == [7; 3]);
    st_ensure!(v.accesses == 0);
    st_ensure!(v.words().iter().all(|&w| w == 0));
    Ok(())
}

fn fill_checked_before_writing() -> SelfTestResult {
    let mut mem = [0u32; 16];
    let mut v = SliceVram::new(&mut mem);
    st_ensure!(matches!(
        v.fill_u64(va(0), 9, 9),
        Err(VramError::OutOfRange { .. })
    ));
    st_ensure!(matches!(
        v.fill_u64(va(0), 9, u64::MAX),
        Err(VramError::OutOfRange { .. })
    ));
    st_ensure!(v.accesses == 0);
    st_ensure!(v.fill_u64(va(8), u64::MAX, 6).is_ok());
    st_ensure!(v.words().get(..2) == Some(&[0, 0][..]));
    st_ensure!(v
        .words()
        .get(2..14)
        .is_some_and(|w| w.iter().all(|&x| x == u32::MAX)));
    st_ensure!(v.words().get(14..) == Some(&[0, 0][..]));
    st_ensure!(v.fill_u64(va(0), 0, 0).is_ok());
    Ok(())
}

fn backend_errors_propagate() -> SelfTestResult {
    let mut mem = [0u32; 16];
    let mut v = SliceVram::new(&mut mem);
    v.fail_after = Some(3);
    st_ensure!(v.write_u64s(va(0), &[1, 2, 3]) == Err(VramError::Backend(-5)));
    st_ensure!(v.accesses == 3);
    v.fail_after = Some(0);
    let mut out = [0u64; 1];
    st_ensure!(v.read_u64s(va(0), &mut out) == Err(VramError::Backend(-5)));
    st_ensure!(v.fill_u64(va(0), 1, 1) == Err(VramError::Backend(-5)));
    Ok(())
}

fn forwarding_through_mut_ref() -> SelfTestResult {
    fn use_dyn(v: &mut dyn VramAccess) -> Result<u64, VramError> {
        let mut r = v;
        let r = &mut r;
        r.write64(va(0), 0xabcd)?;
        r.fill_u64(va(8), 5, 1)?;
        r.write_u64s(va(16), &[6])?;
        let mut out = [0u64; 2];
        r.read_u64s(va(8), &mut out)?;
        let [a, b] = out;
        Ok(r.read64(va(0))?
            .wrapping_add(a)
            .wrapping_add(b)
            .wrapping_add(r.size()))
    }
    let mut mem = [0u32; 8];
    let mut v = SliceVram::new(&mut mem);
    st_ensure!(use_dyn(&mut v) == Ok(0xabcd + 5 + 6 + 32));
    Ok(())
}

fn error_messages() -> SelfTestResult {
    st_ensure!(displays_as(
        &VramError::OutOfRange {
            addr: va(0x40),
            len: 8
        },
        "VRAM access of 8 bytes at 0x40 is out of range"
    ));
    st_ensure!(displays_as(
        &VramError::Misaligned {
            addr: va(0x4),
            align: 8
        },
        "VRAM access at 0x4 is not 8-byte aligned"
    ));
    st_ensure!(displays_as(&VramError::DeviceGone, "the GPU is gone"));
    st_ensure!(displays_as(
        &VramError::Backend(-5),
        "VRAM backend error -5"
    ));
    Ok(())
}
