//! MMU version 2 (Pascal, Volta, Turing, Ampere, Ada): raw entry layouts and the
//! encoder/decoder (`mmu-formats.md` §1).
//!
//! Every v2 address field holds `PA >> 4` after the flag bits: upper PDEs and the small half
//! of a dual PDE store `PA >> 12` at bit 8 (4 KiB-aligned tables), the big half of a dual PDE
//! stores `PA >> 8` at bit 4 (`ADDRESS_BIG_SHIFT` = 8, 256 B-aligned big page tables), PTEs
//! store `PA >> 12` at bit 8.
//!
//! The vidmem and sysmem address fields overlap, so each entry has two raw views that agree on
//! the flag bits: `*Vid` (`ADDRESS_VID` 32:8 or 32:4, the peer id 35:33 and, in PTEs, the
//! comptag line 55:36) and `*Sys` (`ADDRESS_SYS` 53:8 or 53:4). The aperture field chooses the
//! view. The encoder rejects combinations that would collide (a comptag line or a peer id with
//! a sysmem address).

use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::addr::{PageSize, PhysAddr};
use crate::chip::{Chip, MmuVersion};

use super::aperture::{PdeAperture, PteAperture, TableAperture};
use super::bits::{
    bit, canonical, check_address, check_chip, check_field, flag, max_of, setter, shl, shr, test,
};
use super::error::FormatError;
use super::level::{leaf_page, upper_pd_level, Level};
use super::state::{
    DualHalf, DualPdeState, PdeAttrs, PdeState, PdeTable, PteAttrs, PteMapping, PteState,
};

/// Width of a v2 vidmem or peer physical address (`ADDRESS_VID` 32:8 holds PA\[36:12\]).
pub const VID_PA_BITS: u32 = 37;
/// Width of a v2 sysmem physical address (`ADDRESS_SYS` 53:8 holds PA\[57:12\]).
pub const SYS_PA_BITS: u32 = 58;

/// Bit 0 of every v2 entry: `VALID` in a PTE, `IS_PTE` in a PDE (0 = this is a PDE).
pub const IS_PTE: u64 = 1;
/// Bit 3: `VOL` in PTEs and PDEs, `VOL_BIG` in the low qword of a dual PDE.
pub const VOL: u64 = 1 << 3;
/// Bit 5 of a PDE and of the low qword of a dual PDE: `NO_ATS` (Volta+). In a dual PDE it
/// shares its bit with `ADDRESS_BIG` (53:4 / 32:4), see [`encode_dual_pde`].
pub const NO_ATS: u64 = 1 << 5;
/// Bit 5 of a PTE: `PRIVILEGE`.
pub const PRIVILEGE: u64 = 1 << 5;

/// A v2 PTE whose aperture is video or peer memory (`NV_MMU_VER2_PTE_*`).
#[bitfield(u64)]
#[derive(PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct Ver2PteVid {
    /// `VALID` (0).
    pub valid: bool,
    /// `APERTURE` (2:1): 0 vid, 1 peer.
    #[bits(2)]
    pub aperture: u8,
    /// `VOL` (3).
    pub vol: bool,
    /// `ENCRYPTED` (4).
    pub encrypted: bool,
    /// `PRIVILEGE` (5).
    pub privilege: bool,
    /// `READ_ONLY` (6).
    pub read_only: bool,
    /// `ATOMIC_DISABLE` (7).
    pub atomic_disable: bool,
    /// `ADDRESS_VID` (32:8): PA >> 12.
    #[bits(25)]
    pub address_vid: u64,
    /// `ADDRESS_VID_PEER` (35:33): the peer id.
    #[bits(3)]
    pub address_vid_peer: u8,
    /// `COMPTAGLINE` (55:36 on Turing+; 53:36 on Pascal and Volta, where 55:54 are unused).
    #[bits(20)]
    pub comptagline: u32,
    /// `KIND` (63:56).
    #[bits(8)]
    pub kind: u8,
}

/// A v2 PTE whose aperture is system memory.
#[bitfield(u64)]
#[derive(PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct Ver2PteSys {
    /// `VALID` (0).
    pub valid: bool,
    /// `APERTURE` (2:1): 2 sys coherent, 3 sys non-coherent.
    #[bits(2)]
    pub aperture: u8,
    /// `VOL` (3).
    pub vol: bool,
    /// `ENCRYPTED` (4).
    pub encrypted: bool,
    /// `PRIVILEGE` (5).
    pub privilege: bool,
    /// `READ_ONLY` (6).
    pub read_only: bool,
    /// `ATOMIC_DISABLE` (7).
    pub atomic_disable: bool,
    /// `ADDRESS_SYS` (53:8): PA >> 12.
    #[bits(46)]
    pub address_sys: u64,
    #[bits(2)]
    __: u8,
    /// `KIND` (63:56).
    #[bits(8)]
    pub kind: u8,
}

/// A v2 upper PDE (PD3, PD2, PD1) pointing at a table in video memory.
#[bitfield(u64)]
#[derive(PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct Ver2PdeVid {
    /// `IS_PTE` (0): 0 for a PDE.
    pub is_pte: bool,
    /// `APERTURE` (2:1): 1 vid.
    #[bits(2)]
    pub aperture: u8,
    /// `VOL` (3).
    pub vol: bool,
    #[bits(1)]
    __: u8,
    /// `NO_ATS` (5), Volta+.
    pub no_ats: bool,
    #[bits(2)]
    __: u8,
    /// `ADDRESS_VID` (32:8): PA >> 12.
    #[bits(25)]
    pub address_vid: u64,
    #[bits(31)]
    __: u64,
}

/// A v2 upper PDE pointing at a table in system memory.
#[bitfield(u64)]
#[derive(PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct Ver2PdeSys {
    /// `IS_PTE` (0): 0 for a PDE.
    pub is_pte: bool,
    /// `APERTURE` (2:1): 2 or 3.
    #[bits(2)]
    pub aperture: u8,
    /// `VOL` (3).
    pub vol: bool,
    #[bits(1)]
    __: u8,
    /// `NO_ATS` (5), Volta+.
    pub no_ats: bool,
    #[bits(2)]
    __: u8,
    /// `ADDRESS_SYS` (53:8): PA >> 12.
    #[bits(46)]
    pub address_sys: u64,
    #[bits(10)]
    __: u64,
}

/// The low qword of a v2 dual PDE (the big half) with the big table in video memory.
/// `NO_ATS` (bit 5) is not a field here: it lies inside `ADDRESS_BIG_VID`.
#[bitfield(u64)]
#[derive(PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct Ver2DualPdeBigVid {
    /// `IS_PTE` (0): 1 makes the whole 16-byte entry a 2 MiB PTE.
    pub is_pte: bool,
    /// `APERTURE_BIG` (2:1).
    #[bits(2)]
    pub aperture_big: u8,
    /// `VOL_BIG` (3).
    pub vol_big: bool,
    /// `ADDRESS_BIG_VID` (32:4): PA >> 8.
    #[bits(29)]
    pub address_big_vid: u64,
    #[bits(31)]
    __: u64,
}

/// The low qword of a v2 dual PDE with the big table in system memory.
#[bitfield(u64)]
#[derive(PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct Ver2DualPdeBigSys {
    /// `IS_PTE` (0).
    pub is_pte: bool,
    /// `APERTURE_BIG` (2:1).
    #[bits(2)]
    pub aperture_big: u8,
    /// `VOL_BIG` (3).
    pub vol_big: bool,
    /// `ADDRESS_BIG_SYS` (53:4): PA >> 8.
    #[bits(50)]
    pub address_big_sys: u64,
    #[bits(10)]
    __: u64,
}

/// The high qword of a v2 dual PDE (the small half, bits 127:64) with the small table in
/// video memory.
#[bitfield(u64)]
#[derive(PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct Ver2DualPdeSmallVid {
    #[bits(1)]
    __: u8,
    /// `APERTURE_SMALL` (66:65).
    #[bits(2)]
    pub aperture_small: u8,
    /// `VOL_SMALL` (67).
    pub vol_small: bool,
    #[bits(4)]
    __: u8,
    /// `ADDRESS_SMALL_VID` (96:72): PA >> 12.
    #[bits(25)]
    pub address_small_vid: u64,
    #[bits(31)]
    __: u64,
}

/// The high qword of a v2 dual PDE with the small table in system memory.
#[bitfield(u64)]
#[derive(PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct Ver2DualPdeSmallSys {
    #[bits(1)]
    __: u8,
    /// `APERTURE_SMALL` (66:65).
    #[bits(2)]
    pub aperture_small: u8,
    /// `VOL_SMALL` (67).
    pub vol_small: bool,
    #[bits(4)]
    __: u8,
    /// `ADDRESS_SMALL_SYS` (117:72): PA >> 12.
    #[bits(46)]
    pub address_small_sys: u64,
    #[bits(10)]
    __: u64,
}

const V: MmuVersion = MmuVersion::V2;

/// Encodes a valid PTE of `page` size (also used for 2 MiB and 512 MiB PTEs in PDEs).
fn encode_mapping(chip: Chip, m: &PteMapping, page: PageSize) -> Result<u64, FormatError> {
    let a = &m.attrs;
    if a.access_counting_disabled {
        return Err(FormatError::FieldNotInFormat { field: "ACD" });
    }
    let pa = m.address.raw();
    let peer = u64::from(m.peer_id);
    check_field("ADDRESS_VID_PEER", peer, 7)?;
    if m.peer_id != 0 && m.aperture != PteAperture::Peer {
        return Err(FormatError::Conflict {
            what: "peer id with a non-peer aperture",
        });
    }
    let ap = m.aperture.bits();
    if m.aperture.is_sysmem() {
        check_address(pa, page.bytes(), SYS_PA_BITS)?;
        if a.comptagline != 0 {
            return Err(FormatError::Conflict {
                what: "COMPTAGLINE with a sysmem aperture (it shares bits with ADDRESS_SYS)",
            });
        }
        let frame = shr12(pa);
        let e = Ver2PteSys::from_bits(pte_flags(ap, a)?)
            .with_address_sys_checked(frame)
            .map_err(|()| setter("ADDRESS_SYS", frame))?;
        Ok(e.into_bits())
    } else {
        check_address(pa, page.bytes(), VID_PA_BITS)?;
        let ct = u64::from(a.comptagline);
        check_field("COMPTAGLINE", ct, max_of(chip.comptagline_bits()))?;
        let frame = shr12(pa);
        let e = Ver2PteVid::from_bits(pte_flags(ap, a)?)
            .with_address_vid_checked(frame)
            .map_err(|()| setter("ADDRESS_VID", frame))?
            .with_address_vid_peer_checked(m.peer_id)
            .map_err(|()| setter("ADDRESS_VID_PEER", peer))?
            .with_comptagline_checked(a.comptagline)
            .map_err(|()| setter("COMPTAGLINE", ct))?;
        Ok(e.into_bits())
    }
}

/// The bits of a valid PTE outside the address fields: VALID, APERTURE, the flags 7:3 and
/// KIND. The vid and sys views agree on them (only the address fields overlap), so they are
/// set once, through the vid view, as [`read_mapping`] reads them.
fn pte_flags(ap: u8, a: &PteAttrs) -> Result<u64, FormatError> {
    let e = Ver2PteVid::new()
        .with_valid(true)
        .with_aperture_checked(ap)
        .map_err(|()| setter("APERTURE", u64::from(ap)))?
        .with_vol(a.volatile)
        .with_encrypted(a.encrypted)
        .with_privilege(a.privileged)
        .with_read_only(a.read_only)
        .with_atomic_disable(a.atomic_disable)
        .with_kind(a.kind);
    Ok(e.into_bits())
}

const fn shr12(pa: u64) -> u64 {
    shr(pa, 12)
}

/// Reads a valid PTE (bit 0 set) without checking it; the caller re-encodes to check.
fn read_mapping(chip: Chip, raw: u64) -> PteMapping {
    let vid = Ver2PteVid::from_bits(raw);
    let aperture = PteAperture::from_bits(vid.aperture());
    let mut attrs = PteAttrs {
        read_only: vid.read_only(),
        privileged: vid.privilege(),
        volatile: vid.vol(),
        atomic_disable: vid.atomic_disable(),
        encrypted: vid.encrypted(),
        access_counting_disabled: false,
        kind: vid.kind(),
        comptagline: 0,
    };
    if aperture.is_sysmem() {
        let sys = Ver2PteSys::from_bits(raw);
        PteMapping {
            aperture,
            address: PhysAddr::new(shl(sys.address_sys(), 12)),
            peer_id: 0,
            attrs,
        }
    } else {
        // Bits beyond the chip's comptag width are left out, so the canonical check
        // reports them.
        let width_mask = u32::try_from(max_of(chip.comptagline_bits())).unwrap_or(0);
        attrs.comptagline = vid.comptagline() & width_mask;
        PteMapping {
            aperture,
            address: PhysAddr::new(shl(vid.address_vid(), 12)),
            peer_id: if aperture == PteAperture::Peer {
                vid.address_vid_peer()
            } else {
                0
            },
            attrs,
        }
    }
}

/// One raw view of a v2 table pointer: an upper PDE, the big half or the small half of a dual
/// PDE, each for a table in video memory (`*Vid`) or system memory (`*Sys`).
///
/// All six views have one shape (`mmu-formats.md` §1.2, §1.3): the aperture at 2:1 and VOL
/// at 3 of their qword, and an address field holding `PA >> ADDRESS_SHIFT`; only NVIDIA's
/// field names and the address field's position and width differ. So the encoder and decoder are written once
/// ([`TablePointer::encode`], [`TablePointer::read`]) over this trait, and each view brings
/// its own checked setters and field names, which the errors keep.
trait TablePointer: Sized + Default + From<u64> + Into<u64> {
    /// NVIDIA's name of the aperture field (`APERTURE`, `APERTURE_BIG`, `APERTURE_SMALL`).
    const APERTURE: &'static str;
    /// NVIDIA's name of the address field (`ADDRESS_VID`, `ADDRESS_BIG_SYS`, ...).
    const ADDRESS: &'static str;
    /// The address field holds `PA >> ADDRESS_SHIFT`, so the table is aligned to
    /// `1 << ADDRESS_SHIFT`: 12 (4 KiB tables), 8 for the big half (`ADDRESS_BIG_SHIFT`).
    const ADDRESS_SHIFT: u32;
    /// Width of a physical address this view can hold: [`VID_PA_BITS`] or [`SYS_PA_BITS`].
    const PA_BITS: u32;

    /// The aperture field's checked setter.
    fn aperture_checked(self, aperture: u8) -> Result<Self, ()>;
    /// The VOL field's setter.
    fn volatile(self, vol: bool) -> Self;
    /// The address field's checked setter (`value` = `PA >> ADDRESS_SHIFT`).
    fn address_checked(self, value: u64) -> Result<Self, ()>;
    /// The VOL field.
    fn is_volatile(&self) -> bool;
    /// The address field (`PA >> ADDRESS_SHIFT`).
    fn address_field(&self) -> u64;

    /// Encodes the pointer part (aperture, VOL, address) of `t` in this view.
    fn encode(t: &PdeTable) -> Result<u64, FormatError> {
        let pa = t.address.raw();
        check_address(pa, bit(Self::ADDRESS_SHIFT), Self::PA_BITS)?;
        let ap = t.aperture.bits();
        let value = shr(pa, Self::ADDRESS_SHIFT);
        let e = Self::default()
            .aperture_checked(ap)
            .map_err(|()| setter(Self::APERTURE, u64::from(ap)))?
            .volatile(t.attrs.uncached)
            .address_checked(value)
            .map_err(|()| setter(Self::ADDRESS, value))?;
        Ok(e.into())
    }

    /// Reads the table address and VOL of `raw` in this view.
    fn read(raw: u64) -> (PhysAddr, bool) {
        let e = Self::from(raw);
        let address = shl(e.address_field(), Self::ADDRESS_SHIFT);
        (PhysAddr::new(address), e.is_volatile())
    }
}

/// Implements [`TablePointer`] for a raw view by naming its bitfield accessors, so each view
/// keeps NVIDIA's field names in its accessors and in its errors.
macro_rules! table_pointer {
    ($view:ident {
        $aperture:literal: $with_aperture:ident,
        VOL: $vol:ident / $with_vol:ident,
        $address:literal: $get_address:ident / $with_address:ident,
        PA: $pa_bits:ident >> $shift:literal $(,)?
    }) => {
        impl TablePointer for $view {
            const APERTURE: &'static str = $aperture;
            const ADDRESS: &'static str = $address;
            const ADDRESS_SHIFT: u32 = $shift;
            const PA_BITS: u32 = $pa_bits;

            fn aperture_checked(self, aperture: u8) -> Result<Self, ()> {
                self.$with_aperture(aperture)
            }
            fn volatile(self, vol: bool) -> Self {
                self.$with_vol(vol)
            }
            fn address_checked(self, value: u64) -> Result<Self, ()> {
                self.$with_address(value)
            }
            fn is_volatile(&self) -> bool {
                self.$vol()
            }
            fn address_field(&self) -> u64 {
                self.$get_address()
            }
        }
    };
}

table_pointer!(Ver2PdeVid {
    "APERTURE": with_aperture_checked,
    VOL: vol / with_vol,
    "ADDRESS_VID": address_vid / with_address_vid_checked,
    PA: VID_PA_BITS >> 12,
});
table_pointer!(Ver2PdeSys {
    "APERTURE": with_aperture_checked,
    VOL: vol / with_vol,
    "ADDRESS_SYS": address_sys / with_address_sys_checked,
    PA: SYS_PA_BITS >> 12,
});
table_pointer!(Ver2DualPdeBigVid {
    "APERTURE_BIG": with_aperture_big_checked,
    VOL: vol_big / with_vol_big,
    "ADDRESS_BIG_VID": address_big_vid / with_address_big_vid_checked,
    PA: VID_PA_BITS >> 8,
});
table_pointer!(Ver2DualPdeBigSys {
    "APERTURE_BIG": with_aperture_big_checked,
    VOL: vol_big / with_vol_big,
    "ADDRESS_BIG_SYS": address_big_sys / with_address_big_sys_checked,
    PA: SYS_PA_BITS >> 8,
});
table_pointer!(Ver2DualPdeSmallVid {
    "APERTURE_SMALL": with_aperture_small_checked,
    VOL: vol_small / with_vol_small,
    "ADDRESS_SMALL_VID": address_small_vid / with_address_small_vid_checked,
    PA: VID_PA_BITS >> 12,
});
table_pointer!(Ver2DualPdeSmallSys {
    "APERTURE_SMALL": with_aperture_small_checked,
    VOL: vol_small / with_vol_small,
    "ADDRESS_SMALL_SYS": address_small_sys / with_address_small_sys_checked,
    PA: SYS_PA_BITS >> 12,
});

/// Encodes a table pointer in the view its aperture chooses: `Vid` for video memory, `Sys`
/// for system memory (their address fields overlap).
fn encode_pointer<Vid: TablePointer, Sys: TablePointer>(t: &PdeTable) -> Result<u64, FormatError> {
    if t.aperture.is_sysmem() {
        Sys::encode(t)
    } else {
        Vid::encode(t)
    }
}

/// Reads a table pointer whose aperture (not invalid) is `aperture`, in the view it chooses.
/// NO_ATS is left to the caller: where it lies depends on the entry.
fn read_pointer<Vid: TablePointer, Sys: TablePointer>(
    raw: u64,
    aperture: TableAperture,
) -> PdeTable {
    let (address, uncached) = if aperture.is_sysmem() {
        Sys::read(raw)
    } else {
        Vid::read(raw)
    };
    PdeTable {
        aperture,
        address,
        attrs: PdeAttrs {
            uncached,
            no_ats: false,
        },
    }
}

/// Encodes a PTE of a leaf table (`level` = [`Level::PtBig`] or [`Level::PtSmall`]).
///
/// # Errors
///
/// [`FormatError::WrongVersion`] for a v3 chip; [`FormatError::WrongLevel`] for a directory
/// level; [`FormatError::StateNotAllowed`] for `NoValid4K` in a small page table;
/// [`FormatError::FieldNotInFormat`] for `MappingNowhere` or ACD; for a valid PTE the address,
/// field and conflict errors of the v2 layout (`Misaligned`, `AddressTooWide`,
/// `FieldOutOfRange`, `Conflict`).
pub fn encode_pte(chip: Chip, level: Level, state: &PteState) -> Result<u64, FormatError> {
    check_chip(chip, V)?;
    let page = leaf_page(level)?;
    match state {
        PteState::Invalid => Ok(0),
        PteState::Sparse => Ok(VOL),
        PteState::NoValid4K => {
            if level == Level::PtBig {
                Ok(PRIVILEGE)
            } else {
                Err(FormatError::StateNotAllowed { level })
            }
        }
        PteState::MappingNowhere => Err(FormatError::FieldNotInFormat {
            field: "MAPPING_NOWHERE",
        }),
        PteState::Valid(m) => encode_mapping(chip, m, page),
    }
}

/// Decodes a PTE of a leaf table.
///
/// Strict: every bit must be one that encoding the decoded state sets, except that the RM
/// variant of "no valid 4K" (V=0, VOL=1, PRIV=1) decodes as [`PteState::Sparse`], because
/// V=0 with VOL=1 means sparse (`mmu-formats.md` §7.1).
///
/// # Errors
///
/// As [`encode_pte`] for the decoded state, and [`FormatError::ReservedBits`] for bits no
/// encoding sets (e.g. a peer id with the vidmem aperture, comptag bits 55:54 on Pascal, any
/// bit but VOL/PRIV in an invalid PTE).
pub fn decode_pte(chip: Chip, level: Level, raw: u64) -> Result<PteState, FormatError> {
    check_chip(chip, V)?;
    leaf_page(level)?;
    let mut lenient = 0;
    let state = if test(raw, 0) {
        PteState::Valid(read_mapping(chip, raw))
    } else if raw & VOL != 0 {
        lenient = PRIVILEGE;
        PteState::Sparse
    } else if raw & PRIVILEGE != 0 {
        PteState::NoValid4K
    } else {
        PteState::Invalid
    };
    let expected = encode_pte(chip, level, &state)?;
    canonical(raw & !lenient, expected, 0)?;
    Ok(state)
}

/// Encodes an upper PDE (PD3, PD2 or PD1).
///
/// # Errors
///
/// [`FormatError::WrongVersion`]; [`FormatError::NoSuchLevel`] / [`FormatError::WrongLevel`]
/// unless `level` is PD3, PD2 or PD1; [`FormatError::PteNotAllowed`] for a PTE where the chip
/// has no large page (PD1 before Ampere, PD2, PD3); [`FormatError::FieldNotInFormat`] for
/// NO_ATS on Pascal; address and field errors of the table pointer or the PTE.
pub fn encode_pde(chip: Chip, level: Level, state: &PdeState) -> Result<u64, FormatError> {
    check_chip(chip, V)?;
    let info = upper_pd_level(V, level)?;
    match state {
        PdeState::Invalid => Ok(0),
        PdeState::Sparse => Ok(VOL),
        PdeState::Table(t) => {
            let mut raw = encode_pointer::<Ver2PdeVid, Ver2PdeSys>(t)?;
            if t.attrs.no_ats {
                if !chip.has_no_ats() {
                    return Err(FormatError::FieldNotInFormat { field: "NO_ATS" });
                }
                raw |= NO_ATS;
            }
            Ok(raw)
        }
        PdeState::Pte(m) => match info.pte_size {
            Some(size) if chip.supports_page_size(size) => encode_mapping(chip, m, size),
            _ => Err(FormatError::PteNotAllowed { level, chip }),
        },
    }
}

/// Decodes an upper PDE (PD3, PD2 or PD1).
///
/// Strict like [`decode_pte`], except that NO_ATS (bit 5) of an entry without a table is
/// ignored on Volta+: ATS permission has no meaning without a table.
///
/// # Errors
///
/// As [`encode_pde`]; [`FormatError::PteNotAllowed`] for IS_PTE=1 where no PTE may be;
/// [`FormatError::ReservedBits`] for bits no encoding sets.
pub fn decode_pde(chip: Chip, level: Level, raw: u64) -> Result<PdeState, FormatError> {
    check_chip(chip, V)?;
    let info = upper_pd_level(V, level)?;
    let mut lenient = 0;
    let state = if test(raw, 0) {
        match info.pte_size {
            Some(size) if chip.supports_page_size(size) => PdeState::Pte(read_mapping(chip, raw)),
            _ => return Err(FormatError::PteNotAllowed { level, chip }),
        }
    } else {
        match PdeAperture::from_bits(aperture_bits(raw)).table() {
            None => {
                if chip.has_no_ats() {
                    lenient = NO_ATS;
                }
                if raw & VOL != 0 {
                    PdeState::Sparse
                } else {
                    PdeState::Invalid
                }
            }
            Some(ap) => {
                let mut t = read_pointer::<Ver2PdeVid, Ver2PdeSys>(raw, ap);
                t.attrs.no_ats = chip.has_no_ats() && raw & NO_ATS != 0;
                PdeState::Table(t)
            }
        }
    };
    let expected = encode_pde(chip, level, &state)?;
    canonical(raw & !lenient, expected, 0)?;
    Ok(state)
}

/// The 2-bit aperture field at 2:1 of a qword.
fn aperture_bits(raw: u64) -> u8 {
    u8::try_from(shr(raw, 1) & 3).unwrap_or(0)
}

/// Encodes the big half (low qword without NO_ATS) of a dual PDE.
fn encode_big(t: &PdeTable) -> Result<u64, FormatError> {
    if t.attrs.no_ats {
        return Err(FormatError::Conflict {
            what: "NO_ATS with a big page table (v2 dual PDE bit 5 is also ADDRESS_BIG bit 1)",
        });
    }
    encode_pointer::<Ver2DualPdeBigVid, Ver2DualPdeBigSys>(t)
}

/// Encodes a dual PD0 entry as `[low, high]` (bits 63:0, bits 127:64).
///
/// NO_ATS (bit 5) is a single bit for the whole entry and lies inside `ADDRESS_BIG`, so it
/// can only be requested on the small half while the big half is invalid; asking for it on
/// the big half, or on the small half next to a big table, is a [`FormatError::Conflict`].
///
/// # Errors
///
/// [`FormatError::WrongVersion`]; the address errors (big table 256 B aligned, small table
/// 4 KiB aligned, vidmem below 2^37, sysmem below 2^58); [`FormatError::Conflict`] for
/// NO_ATS as described; [`FormatError::FieldNotInFormat`] for NO_ATS on Pascal; the PTE
/// errors for a 2 MiB PTE.
pub fn encode_dual_pde(chip: Chip, state: &DualPdeState) -> Result<[u64; 2], FormatError> {
    check_chip(chip, V)?;
    match state {
        DualPdeState::Pte(m) => Ok([encode_mapping(chip, m, PageSize::Size2M)?, 0]),
        DualPdeState::Sparse => Ok([VOL, 0]),
        DualPdeState::Tables { big, small } => {
            let mut low = match big {
                DualHalf::Invalid => 0,
                DualHalf::Table(t) => encode_big(t)?,
            };
            let high = match small {
                DualHalf::Invalid => 0,
                DualHalf::Table(t) => {
                    if t.attrs.no_ats {
                        if !chip.has_no_ats() {
                            return Err(FormatError::FieldNotInFormat { field: "NO_ATS" });
                        }
                        if matches!(big, DualHalf::Table(_)) {
                            return Err(FormatError::Conflict {
                                what: "NO_ATS with a big page table (v2 dual PDE bit 5 is also ADDRESS_BIG bit 1)",
                            });
                        }
                        low |= NO_ATS;
                    }
                    // The upper-PDE layout moved to bits 127:64; IS_PTE (bit 64) and NO_ATS
                    // (bit 69) stay 0.
                    encode_pointer::<Ver2DualPdeSmallVid, Ver2DualPdeSmallSys>(t)?
                }
            };
            Ok([low, high])
        }
    }
}

/// Decodes a dual PD0 entry `[low, high]`.
///
/// Strict like [`decode_pte`], with these documented exceptions for bits the hardware has no
/// use for: `VOL_BIG` when the big aperture is invalid and the small one is not (the entry
/// cannot be sparse then), `VOL_SMALL` when the small aperture is invalid, and NO_ATS when both
/// apertures are invalid.
///
/// # Errors
///
/// As [`encode_dual_pde`]; [`FormatError::ReservedBits`] with `qword` 0 or 1 for bits no
/// encoding sets (including a non-zero high qword next to a 2 MiB PTE).
pub fn decode_dual_pde(chip: Chip, raw: [u64; 2]) -> Result<DualPdeState, FormatError> {
    check_chip(chip, V)?;
    let [low, high] = raw;
    let mut lenient = [0u64; 2];
    let state = if test(low, 0) {
        DualPdeState::Pte(read_mapping(chip, low))
    } else {
        let big_ap = PdeAperture::from_bits(aperture_bits(low)).table();
        let small_ap = PdeAperture::from_bits(aperture_bits(high)).table();
        match (big_ap, small_ap) {
            (None, None) => {
                lenient[1] = VOL;
                if chip.has_no_ats() {
                    lenient[0] = NO_ATS;
                }
                if low & VOL != 0 {
                    DualPdeState::Sparse
                } else {
                    DualPdeState::INVALID
                }
            }
            (big_ap, small_ap) => {
                let big = match big_ap {
                    None => {
                        lenient[0] = VOL;
                        DualHalf::Invalid
                    }
                    Some(ap) => DualHalf::Table(
                        read_pointer::<Ver2DualPdeBigVid, Ver2DualPdeBigSys>(low, ap),
                    ),
                };
                let small = match small_ap {
                    None => {
                        lenient[1] = VOL;
                        DualHalf::Invalid
                    }
                    Some(ap) => {
                        let mut t =
                            read_pointer::<Ver2DualPdeSmallVid, Ver2DualPdeSmallSys>(high, ap);
                        t.attrs.no_ats = big_ap.is_none() && chip.has_no_ats() && low & NO_ATS != 0;
                        DualHalf::Table(t)
                    }
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
    assert!(core::mem::size_of::<Ver2PteVid>() == 8);
    assert!(core::mem::size_of::<Ver2PteSys>() == 8);
    assert!(core::mem::size_of::<Ver2PdeVid>() == 8);
    assert!(core::mem::size_of::<Ver2PdeSys>() == 8);
    assert!(core::mem::size_of::<Ver2DualPdeBigVid>() == 8);
    assert!(core::mem::size_of::<Ver2DualPdeBigSys>() == 8);
    assert!(core::mem::size_of::<Ver2DualPdeSmallVid>() == 8);
    assert!(core::mem::size_of::<Ver2DualPdeSmallSys>() == 8);
    // Field positions as in the manuals (`NV_MMU_VER2_*`, `mmu-formats.md` §1.2-§1.4).
    assert!(bit(0) == IS_PTE && bit(3) == VOL && bit(5) == NO_ATS);
    assert!(flag(true, 5) == PRIVILEGE);
    assert!(Ver2PteVid::APERTURE_OFFSET == 1 && Ver2PteVid::VOL_OFFSET == 3);
    assert!(Ver2PteVid::ENCRYPTED_OFFSET == 4 && Ver2PteVid::PRIVILEGE_OFFSET == 5);
    assert!(Ver2PteVid::READ_ONLY_OFFSET == 6 && Ver2PteVid::ATOMIC_DISABLE_OFFSET == 7);
    assert!(Ver2PteVid::ADDRESS_VID_OFFSET == 8 && Ver2PteVid::ADDRESS_VID_BITS == 25);
    assert!(Ver2PteVid::ADDRESS_VID_PEER_OFFSET == 33);
    assert!(Ver2PteVid::COMPTAGLINE_OFFSET == 36 && Ver2PteVid::COMPTAGLINE_BITS == 20);
    assert!(Ver2PteVid::KIND_OFFSET == 56 && Ver2PteSys::KIND_OFFSET == 56);
    assert!(Ver2PteSys::ADDRESS_SYS_OFFSET == 8 && Ver2PteSys::ADDRESS_SYS_BITS == 46);
    // `pte_flags` sets bits 7:0 through the vid view for both.
    assert!(Ver2PteSys::APERTURE_OFFSET == 1 && Ver2PteSys::VOL_OFFSET == 3);
    assert!(Ver2PteSys::ENCRYPTED_OFFSET == 4 && Ver2PteSys::PRIVILEGE_OFFSET == 5);
    assert!(Ver2PteSys::READ_ONLY_OFFSET == 6 && Ver2PteSys::ATOMIC_DISABLE_OFFSET == 7);
    assert!(Ver2PdeVid::NO_ATS_OFFSET == 5 && Ver2PdeSys::NO_ATS_OFFSET == 5);
    assert!(Ver2PdeVid::ADDRESS_VID_OFFSET == 8 && Ver2PdeVid::ADDRESS_VID_BITS == 25);
    assert!(Ver2PdeSys::ADDRESS_SYS_OFFSET == 8 && Ver2PdeSys::ADDRESS_SYS_BITS == 46);
    // ADDRESS_BIG_{VID,SYS} = 32:4 / 53:4 (PA >> 8), ADDRESS_SMALL = 96:72 / 117:72.
    assert!(Ver2DualPdeBigVid::ADDRESS_BIG_VID_OFFSET == 4);
    assert!(Ver2DualPdeBigVid::ADDRESS_BIG_VID_BITS == 29);
    assert!(Ver2DualPdeBigSys::ADDRESS_BIG_SYS_OFFSET == 4);
    assert!(Ver2DualPdeBigSys::ADDRESS_BIG_SYS_BITS == 50);
    assert!(Ver2DualPdeSmallVid::APERTURE_SMALL_OFFSET == 65 - 64);
    assert!(Ver2DualPdeSmallVid::VOL_SMALL_OFFSET == 67 - 64);
    assert!(Ver2DualPdeSmallVid::ADDRESS_SMALL_VID_OFFSET == 72 - 64);
    assert!(Ver2DualPdeSmallVid::ADDRESS_SMALL_VID_BITS == 96 - 72 + 1);
    assert!(Ver2DualPdeSmallSys::ADDRESS_SMALL_SYS_OFFSET == 72 - 64);
    assert!(Ver2DualPdeSmallSys::ADDRESS_SMALL_SYS_BITS == 117 - 72 + 1);
};

// The known-answer tests of this format live once, as self-tests in `crate::selftest::mmu_v2`
// (which the kernel module runs); `cargo test` runs each as `selftest::mmu_v2::host::<name>`.
