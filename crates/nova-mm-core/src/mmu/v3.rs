//! MMU version 3 (Hopper, Blackwell): raw entry layouts and the encoder/decoder
//! (`mmu-formats.md` §2).
//!
//! Addresses are stored in place (`entry = PA | flags`): PA\[51:12\] at 51:12 for PDEs, the
//! small half of a dual PDE and PTEs, PA\[51:8\] at 51:8 for the big half of a dual PDE. VOL,
//! PRIVILEGE, READ_ONLY, ATOMIC_DISABLE and the access-counter bit are folded into a 5-bit PTE
//! PCF; a PDE has a 3-bit PCF (cached/uncached × ATS allowed/not, or invalid/sparse).

use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::addr::{PageSize, PhysAddr};
use crate::chip::{Chip, MmuVersion};

use super::aperture::{PdeAperture, PteAperture, TableAperture};
use super::bits::{canonical, check_address, check_chip, check_field, flag, shl, shr, test};
use super::error::FormatError;
use super::level::{leaf_page, upper_pd_level, Level};
use super::state::{
    DualHalf, DualPdeState, PdeAttrs, PdeState, PdeTable, PteAttrs, PteMapping, PteState,
};

/// Width of a v3 physical address: the `ADDRESS` field 51:12 holds PA\[51:12\].
pub const PA_BITS: u32 = 52;
/// Width of a v3 video-memory address accepted by this crate: 40 bits (PA\[39:12\]), as UVM's
/// `ADDRESS_VID` 39:12 and the nova-core review ask; the manual's field is 52 bits wide for
/// every aperture (`mmu-formats.md` §7.14). Peer addresses may use all 52 bits (fabric
/// addresses).
pub const VID_PA_BITS: u32 = 40;

/// PTE PCF bit 0 (valid PTE): `UNCACHED`.
pub const PTE_PCF_UNCACHED: u8 = 1 << 0;
/// PTE PCF bit 1 (valid PTE): `PRIVILEGE`.
pub const PTE_PCF_PRIVILEGE: u8 = 1 << 1;
/// PTE PCF bit 2 (valid PTE): `RO` (read-only).
pub const PTE_PCF_READ_ONLY: u8 = 1 << 2;
/// PTE PCF bit 3 (valid PTE): `NO_ATOMIC`.
pub const PTE_PCF_NO_ATOMIC: u8 = 1 << 3;
/// PTE PCF bit 4 (valid PTE): `ACD`, access counting disabled (0 = `ACE`).
pub const PTE_PCF_ACD: u8 = 1 << 4;
/// PTE PCF of an invalid PTE: `INVALID`.
pub const PTE_PCF_INVALID: u8 = 0;
/// PTE PCF of an invalid PTE: `SPARSE`.
pub const PTE_PCF_SPARSE: u8 = 1;
/// PTE PCF of an invalid PTE: `MAPPING_NOWHERE`.
pub const PTE_PCF_MAPPING_NOWHERE: u8 = 2;
/// PTE PCF of an invalid PTE: `NO_VALID_4KB_PAGE` (big PTEs: block the small page table).
pub const PTE_PCF_NO_VALID_4KB_PAGE: u8 = 3;
/// PDE PCF bit 0: `VALID_UNCACHED` with a table, `SPARSE` without.
pub const PDE_PCF_UNCACHED_OR_SPARSE: u8 = 1 << 0;
/// PDE PCF bit 1: `ATS_NOT_ALLOWED`.
pub const PDE_PCF_ATS_NOT_ALLOWED: u8 = 1 << 1;

/// A v3 PTE (`NV_MMU_VER3_PTE_*`).
#[bitfield(u64)]
#[derive(PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct Ver3Pte {
    /// `VALID` (0).
    pub valid: bool,
    /// `APERTURE` (2:1): 0 vid, 1 peer, 2 sys coherent, 3 sys non-coherent.
    #[bits(2)]
    pub aperture: u8,
    /// `PCF` (7:3).
    #[bits(5)]
    pub pcf: u8,
    /// `KIND` (11:8).
    #[bits(4)]
    pub kind: u8,
    /// `ADDRESS` (51:12): PA\[51:12\].
    #[bits(40)]
    pub address: u64,
    #[bits(9)]
    __: u16,
    /// `PEER_ID` (63:61).
    #[bits(3)]
    pub peer_id: u8,
}

/// A v3 PDE (PD4..PD1; `NV_MMU_VER3_PDE_*`).
#[bitfield(u64)]
#[derive(PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct Ver3Pde {
    /// `IS_PTE` (0).
    pub is_pte: bool,
    /// `APERTURE` (2:1): 0 invalid, 1 vid, 2 sys coherent, 3 sys non-coherent.
    #[bits(2)]
    pub aperture: u8,
    /// `PCF` (5:3).
    #[bits(3)]
    pub pcf: u8,
    #[bits(6)]
    __: u8,
    /// `ADDRESS` (51:12): PA\[51:12\].
    #[bits(40)]
    pub address: u64,
    #[bits(12)]
    __: u16,
}

/// The low qword of a v3 dual PDE (`NV_MMU_VER3_DUAL_PDE_*`, big half).
#[bitfield(u64)]
#[derive(PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct Ver3DualPdeBig {
    /// `IS_PTE` (0).
    pub is_pte: bool,
    /// `APERTURE_BIG` (2:1).
    #[bits(2)]
    pub aperture_big: u8,
    /// `PCF_BIG` (5:3).
    #[bits(3)]
    pub pcf_big: u8,
    #[bits(2)]
    __: u8,
    /// `ADDRESS_BIG` (51:8): PA\[51:8\].
    #[bits(44)]
    pub address_big: u64,
    #[bits(12)]
    __: u16,
}

/// The high qword of a v3 dual PDE (bits 127:64, small half).
#[bitfield(u64)]
#[derive(PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct Ver3DualPdeSmall {
    #[bits(1)]
    __: u8,
    /// `APERTURE_SMALL` (66:65).
    #[bits(2)]
    pub aperture_small: u8,
    /// `PCF_SMALL` (69:67).
    #[bits(3)]
    pub pcf_small: u8,
    #[bits(6)]
    __: u8,
    /// `ADDRESS_SMALL` (115:76): PA\[51:12\].
    #[bits(40)]
    pub address_small: u64,
    #[bits(12)]
    __: u16,
}

const V: MmuVersion = MmuVersion::V3;

/// The PTE PCF of a valid PTE's attributes.
#[must_use]
pub const fn pte_pcf(a: &PteAttrs) -> u8 {
    let mut pcf = 0;
    if a.volatile {
        pcf |= PTE_PCF_UNCACHED;
    }
    if a.privileged {
        pcf |= PTE_PCF_PRIVILEGE;
    }
    if a.read_only {
        pcf |= PTE_PCF_READ_ONLY;
    }
    if a.atomic_disable {
        pcf |= PTE_PCF_NO_ATOMIC;
    }
    if a.access_counting_disabled {
        pcf |= PTE_PCF_ACD;
    }
    pcf
}

/// The attributes a valid PTE's PCF (and kind) stand for.
#[must_use]
pub const fn pte_attrs(pcf: u8, kind: u8) -> PteAttrs {
    PteAttrs {
        read_only: pcf & PTE_PCF_READ_ONLY != 0,
        privileged: pcf & PTE_PCF_PRIVILEGE != 0,
        volatile: pcf & PTE_PCF_UNCACHED != 0,
        atomic_disable: pcf & PTE_PCF_NO_ATOMIC != 0,
        encrypted: false,
        access_counting_disabled: pcf & PTE_PCF_ACD != 0,
        kind,
        comptagline: 0,
    }
}

/// The PDE PCF of a table pointer's attributes.
#[must_use]
pub const fn pde_pcf(a: &PdeAttrs) -> u8 {
    let mut pcf = 0;
    if a.uncached {
        pcf |= PDE_PCF_UNCACHED_OR_SPARSE;
    }
    if a.no_ats {
        pcf |= PDE_PCF_ATS_NOT_ALLOWED;
    }
    pcf
}

const fn pde_attrs(pcf: u8) -> PdeAttrs {
    PdeAttrs {
        uncached: pcf & PDE_PCF_UNCACHED_OR_SPARSE != 0,
        no_ats: pcf & PDE_PCF_ATS_NOT_ALLOWED != 0,
    }
}

fn check_pde_pcf(field: &'static str, pcf: u8) -> Result<(), FormatError> {
    if pcf > 3 {
        Err(FormatError::UndefinedEncoding {
            field,
            value: u64::from(pcf),
        })
    } else {
        Ok(())
    }
}

fn table_pa_bits(aperture: TableAperture) -> u32 {
    if aperture.is_sysmem() {
        PA_BITS
    } else {
        VID_PA_BITS
    }
}

/// Encodes a valid PTE of `page` size (also used for large PTEs in PDEs).
fn encode_mapping(m: &PteMapping, page: PageSize) -> Result<u64, FormatError> {
    let a = &m.attrs;
    if a.encrypted {
        return Err(FormatError::FieldNotInFormat { field: "ENCRYPTED" });
    }
    if a.comptagline != 0 {
        return Err(FormatError::FieldNotInFormat {
            field: "COMPTAGLINE",
        });
    }
    check_field("KIND", u64::from(a.kind), 15)?;
    check_field("PEER_ID", u64::from(m.peer_id), 7)?;
    if m.peer_id != 0 && m.aperture != PteAperture::Peer {
        return Err(FormatError::Conflict {
            what: "peer id with a non-peer aperture",
        });
    }
    let pa = m.address.raw();
    let bits = if m.aperture == PteAperture::Vidmem {
        VID_PA_BITS
    } else {
        PA_BITS
    };
    check_address(pa, page.bytes(), bits)?;
    let frame = shr(pa, 12);
    let ap = m.aperture.bits();
    let pcf = pte_pcf(a);
    let e = Ver3Pte::new()
        .with_valid(true)
        .with_aperture_checked(ap)
        .map_err(|()| super::bits::setter("APERTURE", u64::from(ap)))?
        .with_pcf_checked(pcf)
        .map_err(|()| super::bits::setter("PCF", u64::from(pcf)))?
        .with_kind_checked(a.kind)
        .map_err(|()| super::bits::setter("KIND", u64::from(a.kind)))?
        .with_address_checked(frame)
        .map_err(|()| super::bits::setter("ADDRESS", frame))?
        .with_peer_id_checked(m.peer_id)
        .map_err(|()| super::bits::setter("PEER_ID", u64::from(m.peer_id)))?;
    Ok(e.into_bits())
}

fn read_mapping(raw: u64) -> PteMapping {
    let e = Ver3Pte::from_bits(raw);
    PteMapping {
        aperture: PteAperture::from_bits(e.aperture()),
        address: PhysAddr::new(shl(e.address(), 12)),
        peer_id: e.peer_id(),
        attrs: pte_attrs(e.pcf(), e.kind()),
    }
}

/// An invalid PTE with this PCF (bits 7:3).
const fn invalid_pte(pcf: u8) -> u64 {
    shl(pcf as u64, 3)
}

/// Encodes a PTE of a leaf table (`level` = [`Level::PtBig`] or [`Level::PtSmall`]).
///
/// # Errors
///
/// [`FormatError::WrongVersion`] for a v2 chip; [`FormatError::WrongLevel`] for a directory
/// level; [`FormatError::StateNotAllowed`] for `NoValid4K` in a small page table;
/// [`FormatError::FieldNotInFormat`] for ENCRYPTED or a comptag line; for a valid PTE
/// `Misaligned`, `AddressTooWide` (vidmem ≥ 2^40, others ≥ 2^52), `FieldOutOfRange` (kind
/// > 15, peer id > 7), `Conflict` (peer id without the peer aperture).
pub fn encode_pte(chip: Chip, level: Level, state: &PteState) -> Result<u64, FormatError> {
    check_chip(chip, V)?;
    let page = leaf_page(level)?;
    match state {
        PteState::Invalid => Ok(invalid_pte(PTE_PCF_INVALID)),
        PteState::Sparse => Ok(invalid_pte(PTE_PCF_SPARSE)),
        PteState::MappingNowhere => Ok(invalid_pte(PTE_PCF_MAPPING_NOWHERE)),
        PteState::NoValid4K => {
            if level == Level::PtBig {
                Ok(invalid_pte(PTE_PCF_NO_VALID_4KB_PAGE))
            } else {
                Err(FormatError::StateNotAllowed { level })
            }
        }
        PteState::Valid(m) => encode_mapping(m, page),
    }
}

/// Decodes a PTE of a leaf table. Strict: every set bit must be one that encoding the decoded
/// state sets.
///
/// # Errors
///
/// As [`encode_pte`] for the decoded state; [`FormatError::UndefinedEncoding`] for an invalid
/// PTE with PCF > 3; [`FormatError::ReservedBits`] for bits no encoding sets (60:52, or
/// anything but the PCF in an invalid PTE).
pub fn decode_pte(chip: Chip, level: Level, raw: u64) -> Result<PteState, FormatError> {
    check_chip(chip, V)?;
    leaf_page(level)?;
    let state = if test(raw, 0) {
        PteState::Valid(read_mapping(raw))
    } else {
        let pcf = Ver3Pte::from_bits(raw).pcf();
        match pcf {
            PTE_PCF_INVALID => PteState::Invalid,
            PTE_PCF_SPARSE => PteState::Sparse,
            PTE_PCF_MAPPING_NOWHERE => PteState::MappingNowhere,
            PTE_PCF_NO_VALID_4KB_PAGE => PteState::NoValid4K,
            _ => {
                return Err(FormatError::UndefinedEncoding {
                    field: "PCF",
                    value: u64::from(pcf),
                })
            }
        }
    };
    let expected = encode_pte(chip, level, &state)?;
    canonical(raw, expected, 0)?;
    Ok(state)
}

/// Encodes the pointer part of a PDE (or the high qword of a dual PDE: same bit positions
/// except bit 0).
fn encode_table(t: &PdeTable) -> Result<u64, FormatError> {
    let pa = t.address.raw();
    check_address(pa, 4096, table_pa_bits(t.aperture))?;
    let ap = t.aperture.bits();
    let pcf = pde_pcf(&t.attrs);
    let frame = shr(pa, 12);
    let e = Ver3Pde::new()
        .with_aperture_checked(ap)
        .map_err(|()| super::bits::setter("APERTURE", u64::from(ap)))?
        .with_pcf_checked(pcf)
        .map_err(|()| super::bits::setter("PCF", u64::from(pcf)))?
        .with_address_checked(frame)
        .map_err(|()| super::bits::setter("ADDRESS", frame))?;
    Ok(e.into_bits())
}

/// Encodes an upper PDE (PD4, PD3, PD2 or PD1). Sparse is written as PCF
/// `SPARSE_ATS_ALLOWED` (1).
///
/// # Errors
///
/// [`FormatError::WrongVersion`]; [`FormatError::WrongLevel`] for PD0 and the leaves;
/// [`FormatError::PteNotAllowed`] for a PTE where the chip has no large page (PD4, PD3, PD2
/// before Blackwell); the address errors (4 KiB alignment, vidmem < 2^40, sysmem < 2^52) and
/// the PTE errors of [`encode_pte`].
pub fn encode_pde(chip: Chip, level: Level, state: &PdeState) -> Result<u64, FormatError> {
    check_chip(chip, V)?;
    let info = upper_pd_level(V, level)?;
    match state {
        PdeState::Invalid => Ok(0),
        PdeState::Sparse => Ok(shl(u64::from(PDE_PCF_UNCACHED_OR_SPARSE), 3)),
        PdeState::Table(t) => encode_table(t),
        PdeState::Pte(m) => match info.pte_size {
            Some(size) if chip.supports_page_size(size) => encode_mapping(m, size),
            _ => Err(FormatError::PteNotAllowed { level, chip }),
        },
    }
}

/// Decodes an upper PDE.
///
/// Strict, except that the ATS bit of the PCF of an entry without a table
/// (`INVALID_ATS_NOT_ALLOWED` = 2, `SPARSE_ATS_NOT_ALLOWED` = 3) is ignored: they decode as
/// [`PdeState::Invalid`] / [`PdeState::Sparse`], which encode with ATS allowed (0 / 1).
///
/// # Errors
///
/// As [`encode_pde`]; [`FormatError::PteNotAllowed`] for IS_PTE=1 where no PTE may be;
/// [`FormatError::UndefinedEncoding`] for PCF > 3; [`FormatError::ReservedBits`].
pub fn decode_pde(chip: Chip, level: Level, raw: u64) -> Result<PdeState, FormatError> {
    check_chip(chip, V)?;
    let info = upper_pd_level(V, level)?;
    let mut lenient = 0;
    let state = if test(raw, 0) {
        match info.pte_size {
            Some(size) if chip.supports_page_size(size) => PdeState::Pte(read_mapping(raw)),
            _ => return Err(FormatError::PteNotAllowed { level, chip }),
        }
    } else {
        let e = Ver3Pde::from_bits(raw);
        let pcf = e.pcf();
        check_pde_pcf("PCF", pcf)?;
        match PdeAperture::from_bits(e.aperture()).table() {
            None => {
                lenient = shl(u64::from(PDE_PCF_ATS_NOT_ALLOWED), 3);
                if pcf & PDE_PCF_UNCACHED_OR_SPARSE != 0 {
                    PdeState::Sparse
                } else {
                    PdeState::Invalid
                }
            }
            Some(aperture) => PdeState::Table(PdeTable {
                aperture,
                address: PhysAddr::new(shl(e.address(), 12)),
                attrs: pde_attrs(pcf),
            }),
        }
    };
    let expected = encode_pde(chip, level, &state)?;
    canonical(raw & !lenient, expected, 0)?;
    Ok(state)
}

fn encode_big(t: &PdeTable) -> Result<u64, FormatError> {
    let pa = t.address.raw();
    check_address(pa, 256, table_pa_bits(t.aperture))?;
    let ap = t.aperture.bits();
    let pcf = pde_pcf(&t.attrs);
    let field = shr(pa, 8);
    let e = Ver3DualPdeBig::new()
        .with_aperture_big_checked(ap)
        .map_err(|()| super::bits::setter("APERTURE_BIG", u64::from(ap)))?
        .with_pcf_big_checked(pcf)
        .map_err(|()| super::bits::setter("PCF_BIG", u64::from(pcf)))?
        .with_address_big_checked(field)
        .map_err(|()| super::bits::setter("ADDRESS_BIG", field))?;
    Ok(e.into_bits())
}

fn encode_small(t: &PdeTable) -> Result<u64, FormatError> {
    let pa = t.address.raw();
    check_address(pa, 4096, table_pa_bits(t.aperture))?;
    let ap = t.aperture.bits();
    let pcf = pde_pcf(&t.attrs);
    let frame = shr(pa, 12);
    let e = Ver3DualPdeSmall::new()
        .with_aperture_small_checked(ap)
        .map_err(|()| super::bits::setter("APERTURE_SMALL", u64::from(ap)))?
        .with_pcf_small_checked(pcf)
        .map_err(|()| super::bits::setter("PCF_SMALL", u64::from(pcf)))?
        .with_address_small_checked(frame)
        .map_err(|()| super::bits::setter("ADDRESS_SMALL", frame))?;
    Ok(e.into_bits())
}

/// Encodes a dual PD0 entry as `[low, high]`. Sparse is `PCF_BIG` = `SPARSE_ATS_ALLOWED`
/// (1) with both apertures invalid (RM sets the PCF only in the big half).
///
/// # Errors
///
/// [`FormatError::WrongVersion`]; address errors (big table 256 B aligned, small table 4 KiB
/// aligned, vidmem < 2^40, sysmem < 2^52); the PTE errors of [`encode_pte`] for a 2 MiB PTE.
pub fn encode_dual_pde(chip: Chip, state: &DualPdeState) -> Result<[u64; 2], FormatError> {
    check_chip(chip, V)?;
    match state {
        DualPdeState::Pte(m) => Ok([encode_mapping(m, PageSize::Size2M)?, 0]),
        DualPdeState::Sparse => Ok([shl(u64::from(PDE_PCF_UNCACHED_OR_SPARSE), 3), 0]),
        DualPdeState::Tables { big, small } => {
            let low = match big {
                DualHalf::Invalid => 0,
                DualHalf::Table(t) => encode_big(t)?,
            };
            let high = match small {
                DualHalf::Invalid => 0,
                DualHalf::Table(t) => encode_small(t)?,
            };
            Ok([low, high])
        }
    }
}

/// Decodes a dual PD0 entry `[low, high]`.
///
/// Strict, except that the PCF of a half whose aperture is invalid is ignored (as long as it
/// is a defined value, 0..=3), other than the sparse bit of `PCF_BIG` when both apertures are
/// invalid.
///
/// # Errors
///
/// As [`encode_dual_pde`]; [`FormatError::UndefinedEncoding`] for a PCF > 3;
/// [`FormatError::ReservedBits`] with `qword` 0 or 1.
pub fn decode_dual_pde(chip: Chip, raw: [u64; 2]) -> Result<DualPdeState, FormatError> {
    check_chip(chip, V)?;
    let [low, high] = raw;
    let mut lenient = [0u64; 2];
    let state = if test(low, 0) {
        DualPdeState::Pte(read_mapping(low))
    } else {
        let b = Ver3DualPdeBig::from_bits(low);
        let s = Ver3DualPdeSmall::from_bits(high);
        check_pde_pcf("PCF_BIG", b.pcf_big())?;
        check_pde_pcf("PCF_SMALL", s.pcf_small())?;
        let pcf_mask = shl(7, 3);
        let big_ap = PdeAperture::from_bits(b.aperture_big()).table();
        let small_ap = PdeAperture::from_bits(s.aperture_small()).table();
        match (big_ap, small_ap) {
            (None, None) => {
                lenient = [shl(u64::from(PDE_PCF_ATS_NOT_ALLOWED), 3), pcf_mask];
                if b.pcf_big() & PDE_PCF_UNCACHED_OR_SPARSE != 0 {
                    DualPdeState::Sparse
                } else {
                    DualPdeState::INVALID
                }
            }
            (big_ap, small_ap) => {
                let big = match big_ap {
                    None => {
                        lenient[0] = pcf_mask;
                        DualHalf::Invalid
                    }
                    Some(aperture) => DualHalf::Table(PdeTable {
                        aperture,
                        address: PhysAddr::new(shl(b.address_big(), 8)),
                        attrs: pde_attrs(b.pcf_big()),
                    }),
                };
                let small = match small_ap {
                    None => {
                        lenient[1] = pcf_mask;
                        DualHalf::Invalid
                    }
                    Some(aperture) => DualHalf::Table(PdeTable {
                        aperture,
                        address: PhysAddr::new(shl(s.address_small(), 12)),
                        attrs: pde_attrs(s.pcf_small()),
                    }),
                };
                DualPdeState::Tables { big, small }
            }
        }
    };
    let expected = encode_dual_pde(chip, &state)?;
    canonical(low & !lenient[0], expected[0], 0)?;
    canonical(high & !lenient[1], expected[1], 1)?;
    Ok(state)
}

const _: () = {
    assert!(core::mem::size_of::<Ver3Pte>() == 8);
    assert!(core::mem::size_of::<Ver3Pde>() == 8);
    assert!(core::mem::size_of::<Ver3DualPdeBig>() == 8);
    assert!(core::mem::size_of::<Ver3DualPdeSmall>() == 8);
    assert!(flag(true, 3) == 8);
    // Field positions as in the gh100 `dev_mmu.h` (`NV_MMU_VER3_*`).
    assert!(Ver3Pte::APERTURE_OFFSET == 1 && Ver3Pte::PCF_OFFSET == 3 && Ver3Pte::PCF_BITS == 5);
    assert!(Ver3Pte::KIND_OFFSET == 8 && Ver3Pte::KIND_BITS == 4);
    assert!(Ver3Pte::ADDRESS_OFFSET == 12 && Ver3Pte::ADDRESS_BITS == 40);
    assert!(Ver3Pte::PEER_ID_OFFSET == 61 && Ver3Pte::PEER_ID_BITS == 3);
    assert!(Ver3Pde::PCF_OFFSET == 3 && Ver3Pde::PCF_BITS == 3);
    assert!(Ver3Pde::ADDRESS_OFFSET == 12 && Ver3Pde::ADDRESS_BITS == 40);
    assert!(Ver3DualPdeBig::PCF_BIG_OFFSET == 3);
    assert!(Ver3DualPdeBig::ADDRESS_BIG_OFFSET == 8 && Ver3DualPdeBig::ADDRESS_BIG_BITS == 44);
    assert!(Ver3DualPdeSmall::APERTURE_SMALL_OFFSET == 65 - 64);
    assert!(Ver3DualPdeSmall::PCF_SMALL_OFFSET == 67 - 64);
    assert!(Ver3DualPdeSmall::ADDRESS_SMALL_OFFSET == 76 - 64);
    assert!(Ver3DualPdeSmall::ADDRESS_SMALL_BITS == 115 - 76 + 1);
};

// The known-answer tests of this format live once, as self-tests in `crate::selftest::mmu_v3`
// (which the kernel module runs); `cargo test` runs each as `selftest::mmu_v3::host::<name>`.
