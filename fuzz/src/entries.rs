//! Oracles for the entry formats (`nova_mm_core::mmu`).
//!
//! - Decoding any raw value at any chip and level returns a state or a typed error, never
//!   panics. A decoded state re-encodes; the re-encoding sets only bits that were set in the
//!   raw value (the decoder is strict except for documented ignored bits, which re-encoding
//!   drops), and decodes to the same state.
//! - Encoding any semantic state returns raw bits or a typed error; raw bits decode back to
//!   exactly that state.
//! - A chip of the other MMU version is refused with `WrongVersion`; an entry kind asked at a
//!   level that does not hold it is refused.

use arbitrary::Arbitrary;
use core::fmt::Debug;
use nova_mm_core::mmu::{self, DualPdeState, FormatError, Level, MmuFormat, PdeState, PteState};
use nova_mm_core::{Chip, MmuV2, MmuV3, MmuVersion};

use crate::gen::{self, ArbDualPdeState, ArbPdeState, ArbPteState};

/// One input of the `entry_roundtrip` target.
#[derive(Arbitrary, Debug, Clone)]
pub struct EntryInput {
    /// Chip selector ([`gen::chip`]).
    pub chip: u8,
    /// Level selector ([`gen::level`]), any of the seven levels (also wrong ones).
    pub level: u8,
    /// Raw entry bits (a single entry uses `raw[0]`).
    pub raw: [u64; 2],
    /// How the raw value to decode is built: bit 0 set → the encoding of the generated
    /// state with `raw` XORed in as a flip mask (bit 1 set → only one bit, `raw[0] % 64`),
    /// so that the fuzzer reaches near-legal values.
    pub raw_mode: u8,
    /// A PTE state to encode at `level`.
    pub pte: ArbPteState,
    /// An upper PDE state to encode at `level`.
    pub pde: ArbPdeState,
    /// A dual PDE state to encode.
    pub dual: ArbDualPdeState,
}

/// Panics (the fuzz failure) with the given message if `cond` is false.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            panic!($($msg)*);
        }
    };
}

fn other_version_error<T: Debug>(chip: Chip, r: Result<T, FormatError>) {
    ensure!(
        matches!(r, Err(FormatError::WrongVersion { chip: c, .. }) if c == chip),
        "{chip}: other-version format gave {r:?}"
    );
}

/// `decode(raw) = Ok(s)` ⇒ `encode(s) = Ok(re)`, `re ⊆ raw` and `decode(re) = Ok(s)`.
fn check_canonical<S: PartialEq + Debug, R: Copy + Debug>(
    what: &str,
    raw: R,
    decoded: &Result<S, FormatError>,
    encode: impl Fn(&S) -> Result<R, FormatError>,
    decode: impl Fn(R) -> Result<S, FormatError>,
    subset: impl Fn(R, R) -> bool,
) {
    if let Ok(s) = decoded {
        let re = encode(s);
        let Ok(re) = re else {
            panic!("{what}: {raw:x?} decoded to {s:?}, which does not encode: {re:?}");
        };
        ensure!(
            subset(re, raw),
            "{what}: {raw:x?} -> {s:?} -> {re:x?} sets bits the raw value lacks"
        );
        let again = decode(re);
        ensure!(
            again.as_ref() == Ok(s),
            "{what}: {raw:x?} -> {s:?} -> {re:x?} -> {again:?}"
        );
    }
}

/// `encode(s) = Ok(raw)` ⇒ `decode(raw) = Ok(s)`.
fn check_encoded<S: PartialEq + Debug, R: Copy + Debug>(
    what: &str,
    state: &S,
    encoded: &Result<R, FormatError>,
    decode: impl Fn(R) -> Result<S, FormatError>,
) {
    if let Ok(raw) = encoded {
        let back = decode(*raw);
        ensure!(
            back.as_ref() == Ok(state),
            "{what}: {state:?} -> {raw:x?} -> {back:?}"
        );
    }
}

fn is_upper(level: Level) -> bool {
    !level.is_leaf() && !level.is_dual()
}

fn check_pte(chip: Chip, level: Level, state: &PteState) -> Result<u64, FormatError> {
    let r = mmu::encode_pte(chip, level, state);
    if !level.is_leaf() {
        ensure!(r.is_err(), "{chip}: PTE encoded at {level}: {r:x?}");
    }
    check_encoded("pte", state, &r, |raw| mmu::decode_pte(chip, level, raw));
    match chip.mmu_version() {
        MmuVersion::V2 => other_version_error(chip, MmuV3::encode_pte(chip, level, state)),
        MmuVersion::V3 => other_version_error(chip, MmuV2::encode_pte(chip, level, state)),
    }
    r
}

fn check_pde(chip: Chip, level: Level, state: &PdeState) -> Result<u64, FormatError> {
    let r = mmu::encode_pde(chip, level, state);
    if !is_upper(level) {
        ensure!(r.is_err(), "{chip}: upper PDE encoded at {level}: {r:x?}");
    }
    if let (PdeState::Pte(_), Ok(_)) = (state, &r) {
        let allowed = mmu::level_info(chip.mmu_version(), level)
            .map(|i| i.allows_pte(chip))
            .unwrap_or(false);
        ensure!(allowed, "{chip}: large PTE encoded at {level}: {r:x?}");
    }
    check_encoded("pde", state, &r, |raw| mmu::decode_pde(chip, level, raw));
    match chip.mmu_version() {
        MmuVersion::V2 => other_version_error(chip, MmuV3::encode_pde(chip, level, state)),
        MmuVersion::V3 => other_version_error(chip, MmuV2::encode_pde(chip, level, state)),
    }
    r
}

fn check_dual(chip: Chip, state: &DualPdeState) -> Result<[u64; 2], FormatError> {
    let r = mmu::encode_dual_pde(chip, state);
    check_encoded("dual", state, &r, |raw| mmu::decode_dual_pde(chip, raw));
    match chip.mmu_version() {
        MmuVersion::V2 => other_version_error(chip, MmuV3::encode_dual_pde(chip, state)),
        MmuVersion::V3 => other_version_error(chip, MmuV2::encode_dual_pde(chip, state)),
    }
    r
}

fn decode_checks(chip: Chip, level: Level, raw: u64, dual: [u64; 2]) {
    let d = mmu::decode_pte(chip, level, raw);
    if !level.is_leaf() {
        ensure!(d.is_err(), "{chip}: {raw:#x} decoded as a PTE at {level}");
    }
    check_canonical(
        "decode pte",
        raw,
        &d,
        |s| mmu::encode_pte(chip, level, s),
        |r| mmu::decode_pte(chip, level, r),
        |re, raw| re & !raw == 0,
    );
    let d = mmu::decode_pde(chip, level, raw);
    if !is_upper(level) {
        ensure!(d.is_err(), "{chip}: {raw:#x} decoded as a PDE at {level}");
    }
    check_canonical(
        "decode pde",
        raw,
        &d,
        |s| mmu::encode_pde(chip, level, s),
        |r| mmu::decode_pde(chip, level, r),
        |re, raw| re & !raw == 0,
    );
    let d = mmu::decode_dual_pde(chip, dual);
    check_canonical(
        "decode dual",
        dual,
        &d,
        |s| mmu::encode_dual_pde(chip, s),
        |r| mmu::decode_dual_pde(chip, r),
        |re, raw| re[0] & !raw[0] == 0 && re[1] & !raw[1] == 0,
    );
    match chip.mmu_version() {
        MmuVersion::V2 => {
            other_version_error(chip, MmuV3::decode_pte(chip, level, raw));
            other_version_error(chip, MmuV3::decode_pde(chip, level, raw));
            other_version_error(chip, MmuV3::decode_dual_pde(chip, dual));
        }
        MmuVersion::V3 => {
            other_version_error(chip, MmuV2::decode_pte(chip, level, raw));
            other_version_error(chip, MmuV2::decode_pde(chip, level, raw));
            other_version_error(chip, MmuV2::decode_dual_pde(chip, dual));
        }
    }
}

/// Runs every entry oracle on one input; panics on a violation.
pub fn check(input: &EntryInput) {
    let chip = gen::chip(input.chip);
    let level = gen::level(input.level);
    let pte = check_pte(chip, level, &input.pte.get());
    let pde = check_pde(chip, level, &input.pde.get());
    let dual = check_dual(chip, &input.dual.get());

    let [r0, r1] = input.raw;
    let flip = |base: u64, mask: u64| -> u64 {
        if input.raw_mode & 2 != 0 {
            base ^ (1u64 << (mask % 64))
        } else {
            base ^ mask
        }
    };
    let (raw, dual_raw) = if input.raw_mode & 1 != 0 {
        // Near a legal encoding: whichever of the three encoded, with some bits flipped.
        let base = pte.or(pde).unwrap_or(0);
        let d = dual.unwrap_or([0, 0]);
        let sel = input.raw_mode & 4 != 0;
        (
            flip(base, r0),
            if sel {
                [flip(d[0], r0), d[1]]
            } else {
                [d[0], flip(d[1], r1)]
            },
        )
    } else {
        (r0, input.raw)
    };
    decode_checks(chip, level, raw, dual_raw);
}
