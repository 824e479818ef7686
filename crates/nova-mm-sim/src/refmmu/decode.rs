//! Entry decoding for the reference MMU, straight from the bit tables of `mmu-formats.md` §1.2-1.5
//! (v2) and §2.2-2.3 (v3), with plain shifts and masks.

use nova_mm_core::MmuVersion;

use super::{Aperture, PteAttrs, RefMmu};

/// Bits `hi:lo` of `v`.
pub(super) const fn bits(v: u64, hi: u32, lo: u32) -> u64 {
    (v >> lo) & (u64::MAX >> (63 - hi + lo))
}

/// Whether bit `n` of `v` is set.
const fn bit(v: u64, n: u32) -> bool {
    (v >> n) & 1 == 1
}

/// A mask of bits `hi:lo`.
const fn mask(hi: u32, lo: u32) -> u64 {
    (u64::MAX >> (63 - hi + lo)) << lo
}

/// Bit 2 of a v3 PDE PCF (entry bit 5): §2.2 defines PCF values 0..3 only, so a pointer with
/// PCF 4..7 is an undefined encoding (strict mode faults, as for undefined PTE PCFs). This is
/// where v2 keeps NO_ATS, the likely source of such a value.
const V3_PCF_UNDEFINED: u64 = 1 << 5;

/// Bits 4, 6 and 7 of a v2 upper PDE: §1.2 names no field there (VOL is 3, NO_ATS 5, the
/// address starts at 8), so strict mode faults on them, as the core refuses them.
const V2_PDE_UNNAMED: u64 = (1 << 4) | (1 << 6) | (1 << 7);

/// Bit 5 of a v2 upper PDE, NO_ATS, which exists from Volta on: unnamed (reserved) on Pascal.
const V2_PDE_NO_ATS: u64 = 1 << 5;

/// Bits 64 and 68..71 of a v2 dual PDE (bits 0 and 7:4 of the small half's qword): §1.3 names
/// no field there (APERTURE_SMALL is 66:65, VOL_SMALL 67, ADDRESS_SMALL starts at 72).
const V2_SMALL_HALF_UNNAMED: u64 = 1 | (0xF << 4);

/// A PDE (or PDE half) decoded.
pub(super) enum Pde {
    /// Aperture 0 and not sparse.
    Invalid,
    /// Aperture 0, sparse bit set.
    Sparse,
    /// Points at a table in VRAM at this address.
    Vid(u64),
    /// Points at a table in system memory.
    Sys,
    /// Reserved bits set (strict mode).
    Reserved,
}

/// A PTE decoded, before the page size and access are considered.
pub(super) enum Pte {
    Valid {
        base: u64,
        aperture: Aperture,
        peer_id: u8,
        attrs: PteAttrs,
        kind: u8,
        comptagline: u32,
    },
    /// V=0, nothing special (the big PTE defers to the small table).
    Invalid,
    Sparse,
    /// v2 V=0 PRIV=1, v3 PCF 3.
    NoValid4k,
    /// v3 PCF 2.
    Nowhere,
    Reserved,
}

impl RefMmu {
    // ---- entry decoding, straight from the bit tables ----

    /// An upper PDE (PD4..PD1) with IS_PTE = 0.
    pub(super) fn decode_pde(&self, e: u64) -> Pde {
        match self.version() {
            MmuVersion::V2 => {
                // §1.2: APERTURE 2:1 (0 invalid, 1 vid, 2/3 sys), VOL 3,
                // ADDRESS_VID 32:8 (PA>>12; 35:33 peer must be 0), ADDRESS_SYS 53:8, NO_ATS 5
                // (Volta and later). Bits 4, 6, 7 (and 5 on Pascal) are named by no field.
                let unnamed = if self.chip.has_no_ats() {
                    V2_PDE_UNNAMED
                } else {
                    V2_PDE_UNNAMED | V2_PDE_NO_ATS
                };
                self.v2_pointer(e, bits(e, 2, 1), bit(e, 3), 8, 12, unnamed)
            }
            MmuVersion::V3 => {
                // §2.2: APERTURE 2:1, PCF 5:3 (bit 3 = sparse when aperture 0), ADDRESS 51:12
                // in place; 11:6 and 63:52 unused; PCF 4..7 (bit 5) undefined.
                self.v3_pointer(
                    e,
                    bits(e, 2, 1),
                    mask(51, 12),
                    V3_PCF_UNDEFINED | mask(11, 6) | mask(63, 52),
                )
            }
        }
    }

    /// The big half (low qword) of a dual PD0 entry.
    pub(super) fn decode_big_half(&self, q0: u64) -> Pde {
        match self.version() {
            // §1.3: APERTURE_BIG 2:1, VOL_BIG 3, ADDRESS_BIG 53:4 sys / 32:4 vid = PA >> 8.
            MmuVersion::V2 => self.v2_pointer(q0, bits(q0, 2, 1), bit(q0, 3), 4, 8, 0),
            // §2.2: APERTURE_BIG 2:1, PCF_BIG 5:3, ADDRESS_BIG 51:8 = PA in place.
            MmuVersion::V3 => self.v3_pointer(
                q0,
                bits(q0, 2, 1),
                mask(51, 8),
                V3_PCF_UNDEFINED | mask(7, 6) | mask(63, 52),
            ),
        }
    }

    /// The small half (high qword) of a dual PD0 entry.
    pub(super) fn decode_small_half(&self, q1: u64) -> Pde {
        match self.version() {
            // §1.3: APERTURE_SMALL 66:65 = q1 2:1, VOL_SMALL 67 = q1 3 (sparseness is decided
            // by VOL_BIG, so it does not matter here), ADDRESS_SMALL 117:72 / 96:72 = q1 53:8 /
            // 32:8, PA >> 12. Bits 64 and 68..71 (q1 0 and 7:4) are named by no field.
            MmuVersion::V2 => {
                self.v2_pointer(q1, bits(q1, 2, 1), false, 8, 12, V2_SMALL_HALF_UNNAMED)
            }
            // §2.2: APERTURE_SMALL 66:65, PCF_SMALL 69:67, ADDRESS_SMALL 115:76 = q1 51:12.
            MmuVersion::V3 => self
                .v3_pointer(
                    q1,
                    bits(q1, 2, 1),
                    mask(51, 12),
                    V3_PCF_UNDEFINED | mask(11, 6) | mask(63, 52),
                )
                .not_sparse(),
        }
    }

    /// A v2 directory pointer whose address field starts at bit `lo` and holds PA >> `shift`:
    /// vid field is `(32):lo` (peer 35:33 must be 0), sys field `53:lo`; `unnamed` are the
    /// low bits no field names, reserved in strict mode when the pointer is valid.
    fn v2_pointer(
        &self,
        e: u64,
        aperture: u64,
        sparse_bit: bool,
        lo: u32,
        shift: u32,
        unnamed: u64,
    ) -> Pde {
        match aperture {
            0 => {
                if sparse_bit {
                    Pde::Sparse
                } else {
                    Pde::Invalid
                }
            }
            1 => {
                if self.strict && e & (mask(63, 33) | unnamed) != 0 {
                    return Pde::Reserved;
                }
                Pde::Vid(bits(e, 32, lo) << shift)
            }
            _ => {
                if self.strict && e & (mask(63, 54) | unnamed) != 0 {
                    return Pde::Reserved;
                }
                Pde::Sys
            }
        }
    }

    /// A v3 directory pointer with the address in place under `addr_mask`.
    fn v3_pointer(&self, e: u64, aperture: u64, addr_mask: u64, reserved: u64) -> Pde {
        match aperture {
            // PCF bit 0 (entry bit 3) = SPARSE when the aperture is invalid.
            0 => {
                if bit(e, 3) {
                    Pde::Sparse
                } else {
                    Pde::Invalid
                }
            }
            1 => {
                if self.strict && e & reserved != 0 {
                    return Pde::Reserved;
                }
                Pde::Vid(e & addr_mask)
            }
            _ => {
                if self.strict && e & reserved != 0 {
                    return Pde::Reserved;
                }
                Pde::Sys
            }
        }
    }

    /// A PTE (small, big, or large at PD0/PD1/PD2).
    pub(super) fn decode_pte(&self, e: u64) -> Pte {
        match self.version() {
            MmuVersion::V2 => self.decode_pte_v2(e),
            MmuVersion::V3 => self.decode_pte_v3(e),
        }
    }

    /// §1.4 v2 PTE: VALID 0, APERTURE 2:1 (0 vid, 1 peer, 2 sys coh, 3 sys noncoh), VOL 3,
    /// ENCRYPTED 4, PRIVILEGE 5, READ_ONLY 6, ATOMIC_DISABLE 7, ADDRESS_VID 32:8 + PEER 35:33,
    /// ADDRESS_SYS 53:8, COMPTAGLINE 53:36 (Pascal/Volta) / 55:36 (Turing+), KIND 63:56.
    fn decode_pte_v2(&self, e: u64) -> Pte {
        if !bit(e, 0) {
            // §1.5: V=0 VOL=1 sparse; V=0 PRIV=1 "no valid 4K below"; otherwise invalid.
            return if bit(e, 3) {
                Pte::Sparse
            } else if bit(e, 5) {
                Pte::NoValid4k
            } else {
                Pte::Invalid
            };
        }
        let aperture = match bits(e, 2, 1) {
            0 => Aperture::Vidmem,
            1 => Aperture::Peer,
            2 => Aperture::SysCoherent,
            _ => Aperture::SysNonCoherent,
        };
        let ctl_bits = self.chip.comptagline_bits(); // 18 or 20
        let (base, peer_id, comptagline) = match aperture {
            Aperture::Vidmem | Aperture::Peer => {
                let peer = bits(e, 35, 33);
                let ctl_hi = 36 + ctl_bits - 1; // 53 or 55
                let stray_peer = aperture == Aperture::Vidmem && peer != 0;
                let above_ctl = ctl_hi < 55 && bits(e, 55, ctl_hi + 1) != 0;
                let reserved = stray_peer || above_ctl;
                if self.strict && reserved {
                    return Pte::Reserved;
                }
                let ctl = u32::try_from(bits(e, ctl_hi, 36)).unwrap_or(0);
                let peer_id = if aperture == Aperture::Peer {
                    u8::try_from(peer).unwrap_or(0)
                } else {
                    0
                };
                (bits(e, 32, 8) << 12, peer_id, ctl)
            }
            Aperture::SysCoherent | Aperture::SysNonCoherent => {
                if self.strict && bits(e, 55, 54) != 0 {
                    return Pte::Reserved;
                }
                (bits(e, 53, 8) << 12, 0, 0)
            }
        };
        Pte::Valid {
            base,
            aperture,
            peer_id,
            attrs: PteAttrs {
                uncached: bit(e, 3),
                encrypted: bit(e, 4),
                privileged: bit(e, 5),
                read_only: bit(e, 6),
                atomic_disabled: bit(e, 7),
                access_counting_disabled: false,
                pcf: None,
            },
            kind: u8::try_from(bits(e, 63, 56)).unwrap_or(0),
            comptagline,
        }
    }

    /// §2.3 v3 PTE: VALID 0, APERTURE 2:1, PCF 7:3, KIND 11:8, ADDRESS 51:12 in place,
    /// PEER_ID 63:61; 60:52 unused.
    fn decode_pte_v3(&self, e: u64) -> Pte {
        let pcf = u8::try_from(bits(e, 7, 3)).unwrap_or(0);
        if !bit(e, 0) {
            return match pcf {
                0 => Pte::Invalid,
                1 => Pte::Sparse,
                2 => Pte::Nowhere,
                3 => Pte::NoValid4k,
                _ if self.strict => Pte::Reserved,
                _ => Pte::Invalid,
            };
        }
        let aperture = match bits(e, 2, 1) {
            0 => Aperture::Vidmem,
            1 => Aperture::Peer,
            2 => Aperture::SysCoherent,
            _ => Aperture::SysNonCoherent,
        };
        let peer = u8::try_from(bits(e, 63, 61)).unwrap_or(0);
        if self.strict && (bits(e, 60, 52) != 0 || (aperture != Aperture::Peer && peer != 0)) {
            return Pte::Reserved;
        }
        Pte::Valid {
            base: e & mask(51, 12),
            aperture,
            peer_id: if aperture == Aperture::Peer { peer } else { 0 },
            attrs: PteAttrs {
                uncached: pcf & 1 != 0,
                encrypted: false,
                privileged: pcf & 2 != 0,
                read_only: pcf & 4 != 0,
                atomic_disabled: pcf & 8 != 0,
                access_counting_disabled: pcf & 16 != 0,
                pcf: Some(pcf),
            },
            kind: u8::try_from(bits(e, 11, 8)).unwrap_or(0),
            comptagline: 0,
        }
    }
}

impl Pde {
    /// The small half of a v3 dual PDE has no sparse meaning of its own.
    fn not_sparse(self) -> Pde {
        match self {
            Pde::Sparse => Pde::Invalid,
            p => p,
        }
    }
}
