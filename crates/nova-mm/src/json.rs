//! The JSON output of the tool, exactly as issue 6 documents it. The format is stable:
//!
//! - `translate --json`: one [`TranslateJson`] object per VA, one per line:
//!   `{"va":"0x…","state":"mapped"|"unmapped"|"sparse","pa":"0x…","aperture":…,"page_size":N,
//!   "read_only":B,"peer_id":N}`; `pa`, `aperture`, `page_size` and `read_only` only when mapped,
//!   `peer_id` only for the peer aperture; `pa` is the page base plus the VA's offset.
//! - `mappings --json`: a JSON array of [`MappingJson`] (`{"va","pa","page_size","aperture",
//!   "read_only"}` plus `peer_id` for the peer aperture), one per effective PTE, sorted by VA,
//!   printed one object per line.
//! - `mappings --sparse --json`: a JSON array of [`SparseJson`] (`{"va","size"}`).
//! - `demo --json`: one [`DemoJson`] object `{"mmu":"v2"|"v3","pdb":"0x…","mappings":[…],
//!   "stats":{…}}`.
//!
//! Addresses are lowercase hex strings with `0x` ([`Hex`]); sizes (`page_size`, `size`) are
//! numbers of bytes; apertures are `vidmem`, `peer`, `sysmem-coherent`, `sysmem-noncoherent`.

use std::fmt;
use std::io::{self, Write};

use nova_mm_core::MmuVersion;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// An address printed as a lowercase hex string with `0x` (`"0x1f000"`, `"0x0"`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Hex(pub u64);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hex {
    /// Accepts exactly what [`Serialize`] produces: `0x` and lowercase hex digits.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let digits = s
            .strip_prefix("0x")
            .filter(|t| !t.is_empty() && t.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')))
            .ok_or_else(|| de::Error::custom(format!("'{s}' is not a lowercase 0x hex string")))?;
        u64::from_str_radix(digits, 16)
            .map(Hex)
            .map_err(|_| de::Error::custom(format!("'{s}' does not fit in 64 bits")))
    }
}

/// The aperture of a mapping as JSON spells it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApertureJson {
    /// The GPU's own video memory.
    Vidmem,
    /// A peer GPU's video memory (`peer_id` says which).
    Peer,
    /// Coherent (snooped) system memory.
    SysmemCoherent,
    /// Non-coherent system memory.
    SysmemNoncoherent,
}

/// A PTE aperture with its peer id, the input of the constructors below (so that `peer_id` is
/// present exactly for the peer aperture).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Aperture {
    /// Video memory.
    Vidmem,
    /// Peer video memory through peer `id`.
    Peer {
        /// The PTE's peer index.
        id: u32,
    },
    /// Coherent system memory.
    SysmemCoherent,
    /// Non-coherent system memory.
    SysmemNoncoherent,
}

impl Aperture {
    fn split(self) -> (ApertureJson, Option<u32>) {
        match self {
            Aperture::Vidmem => (ApertureJson::Vidmem, None),
            Aperture::Peer { id } => (ApertureJson::Peer, Some(id)),
            Aperture::SysmemCoherent => (ApertureJson::SysmemCoherent, None),
            Aperture::SysmemNoncoherent => (ApertureJson::SysmemNoncoherent, None),
        }
    }
}

/// The state of a translated VA.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VaState {
    /// A valid PTE maps it.
    Mapped,
    /// Nothing maps it.
    Unmapped,
    /// A sparse PTE or PDE covers it (reads return zero, writes are dropped).
    Sparse,
}

/// One line of `translate --json`. Build it with [`TranslateJson::mapped`],
/// [`TranslateJson::unmapped`] or [`TranslateJson::sparse`] so the optional fields are right.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TranslateJson {
    /// The VA asked for.
    pub va: Hex,
    /// What the tables say about it.
    pub state: VaState,
    /// Page base plus the VA's offset in the page (mapped only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pa: Option<Hex>,
    /// Aperture (mapped only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aperture: Option<ApertureJson>,
    /// Page size in bytes (mapped only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u64>,
    /// Whether the PTE is read-only (mapped only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Peer index (peer aperture only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<u32>,
}

impl TranslateJson {
    /// A mapped VA: `pa` is the translated address (page base plus offset).
    #[must_use]
    pub fn mapped(va: u64, pa: u64, aperture: Aperture, page_size: u64, read_only: bool) -> Self {
        let (aperture, peer_id) = aperture.split();
        Self {
            va: Hex(va),
            state: VaState::Mapped,
            pa: Some(Hex(pa)),
            aperture: Some(aperture),
            page_size: Some(page_size),
            read_only: Some(read_only),
            peer_id,
        }
    }

    /// An unmapped VA.
    #[must_use]
    pub fn unmapped(va: u64) -> Self {
        Self::bare(va, VaState::Unmapped)
    }

    /// A VA covered by a sparse entry.
    #[must_use]
    pub fn sparse(va: u64) -> Self {
        Self::bare(va, VaState::Sparse)
    }

    fn bare(va: u64, state: VaState) -> Self {
        Self {
            va: Hex(va),
            state,
            pa: None,
            aperture: None,
            page_size: None,
            read_only: None,
            peer_id: None,
        }
    }
}

/// One effective PTE in `mappings --json` and `demo --json`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct MappingJson {
    /// First VA of the page.
    pub va: Hex,
    /// Physical address of the page.
    pub pa: Hex,
    /// Page size in bytes.
    pub page_size: u64,
    /// Aperture.
    pub aperture: ApertureJson,
    /// Whether the PTE is read-only.
    pub read_only: bool,
    /// Peer index (peer aperture only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<u32>,
}

impl MappingJson {
    /// The row for one PTE.
    #[must_use]
    pub fn new(va: u64, pa: u64, page_size: u64, aperture: Aperture, read_only: bool) -> Self {
        let (aperture, peer_id) = aperture.split();
        Self {
            va: Hex(va),
            pa: Hex(pa),
            page_size,
            aperture,
            read_only,
            peer_id,
        }
    }
}

/// One sparse range in `mappings --sparse --json`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SparseJson {
    /// First VA of the range.
    pub va: Hex,
    /// Length in bytes.
    pub size: u64,
}

/// The MMU version as JSON spells it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MmuJson {
    /// MMU v2 (Pascal to Ada).
    V2,
    /// MMU v3 (Hopper, Blackwell).
    V3,
}

impl From<MmuVersion> for MmuJson {
    fn from(v: MmuVersion) -> Self {
        match v {
            MmuVersion::V2 => MmuJson::V2,
            MmuVersion::V3 => MmuJson::V3,
        }
    }
}

/// The counters `demo` reports.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct DemoStats {
    /// Page-table entries written.
    pub pte_writes: u64,
    /// TLB invalidates issued.
    pub tlb_invalidates: u64,
    /// PRAMIN window moves.
    pub window_moves: u64,
    /// Page tables allocated.
    pub page_tables_allocated: u64,
    /// Page tables freed.
    pub page_tables_freed: u64,
}

/// The `demo --json` report.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DemoJson {
    /// MMU version of the simulated chip.
    pub mmu: MmuJson,
    /// The BAR1 page directory base.
    pub pdb: Hex,
    /// The mappings live at the end (as `mappings --json` would list them from the saved image).
    pub mappings: Vec<MappingJson>,
    /// Counters.
    pub stats: DemoStats,
}

/// Writes each item as one compact JSON object on its own line (JSON Lines).
///
/// # Errors
///
/// The writer's I/O error.
pub fn write_json_lines<T: Serialize>(out: &mut dyn Write, items: &[T]) -> io::Result<()> {
    for item in items {
        serde_json::to_writer(&mut *out, item)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Writes a JSON array with one compact object per line: `[` on the first line, `]` on the last
/// (an empty array is `[]`).
///
/// # Errors
///
/// The writer's I/O error.
pub fn write_json_array<T: Serialize>(out: &mut dyn Write, items: &[T]) -> io::Result<()> {
    if items.is_empty() {
        return out.write_all(b"[]\n");
    }
    out.write_all(b"[\n")?;
    for (i, item) in items.iter().enumerate() {
        serde_json::to_writer(&mut *out, item)?;
        out.write_all(if i + 1 < items.len() { b",\n" } else { b"\n" })?;
    }
    out.write_all(b"]\n")
}

/// Writes one compact JSON object and a newline.
///
/// # Errors
///
/// The writer's I/O error.
pub fn write_json<T: Serialize>(out: &mut dyn Write, item: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *out, item)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn js<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn translate_lines() {
        assert_eq!(
            js(&TranslateJson::mapped(
                0x10_1234,
                0x2_0000_1234,
                Aperture::Vidmem,
                4096,
                false
            )),
            r#"{"va":"0x101234","state":"mapped","pa":"0x200001234","aperture":"vidmem","page_size":4096,"read_only":false}"#
        );
        assert_eq!(
            js(&TranslateJson::mapped(
                0xABC_0000,
                0xDEAD_0000,
                Aperture::Peer { id: 3 },
                0x20_0000,
                true
            )),
            r#"{"va":"0xabc0000","state":"mapped","pa":"0xdead0000","aperture":"peer","page_size":2097152,"read_only":true,"peer_id":3}"#
        );
        assert_eq!(
            js(&TranslateJson::mapped(
                0,
                0x1000,
                Aperture::SysmemCoherent,
                65536,
                false
            )),
            r#"{"va":"0x0","state":"mapped","pa":"0x1000","aperture":"sysmem-coherent","page_size":65536,"read_only":false}"#
        );
        assert_eq!(
            js(&TranslateJson::unmapped(0xffff_ffff_ffff_ffff)),
            r#"{"va":"0xffffffffffffffff","state":"unmapped"}"#
        );
        assert_eq!(
            js(&TranslateJson::sparse(0x4000)),
            r#"{"va":"0x4000","state":"sparse"}"#
        );
    }

    #[test]
    fn mapping_rows_and_arrays() {
        let rows = [
            MappingJson::new(0x1000, 0x8000, 4096, Aperture::SysmemNoncoherent, true),
            MappingJson::new(
                0x20_0000,
                0x40_0000,
                0x20_0000,
                Aperture::Peer { id: 0 },
                false,
            ),
        ];
        assert_eq!(
            js(&rows[0]),
            r#"{"va":"0x1000","pa":"0x8000","page_size":4096,"aperture":"sysmem-noncoherent","read_only":true}"#
        );
        let mut out = Vec::new();
        write_json_array(&mut out, &rows).unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            concat!(
                "[\n",
                r#"{"va":"0x1000","pa":"0x8000","page_size":4096,"aperture":"sysmem-noncoherent","read_only":true},"#,
                "\n",
                r#"{"va":"0x200000","pa":"0x400000","page_size":2097152,"aperture":"peer","read_only":false,"peer_id":0}"#,
                "\n]\n"
            )
        );
        let back: Vec<MappingJson> = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, rows);
        let mut empty = Vec::new();
        write_json_array::<MappingJson>(&mut empty, &[]).unwrap();
        assert_eq!(empty, b"[]\n");
        let mut lines = Vec::new();
        write_json_lines(
            &mut lines,
            &[TranslateJson::unmapped(1), TranslateJson::sparse(2)],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(lines).unwrap(),
            "{\"va\":\"0x1\",\"state\":\"unmapped\"}\n{\"va\":\"0x2\",\"state\":\"sparse\"}\n"
        );
    }

    #[test]
    fn sparse_and_demo() {
        assert_eq!(
            js(&SparseJson {
                va: Hex(0x40_0000),
                size: 0x20_0000
            }),
            r#"{"va":"0x400000","size":2097152}"#
        );
        let demo = DemoJson {
            mmu: MmuVersion::V3.into(),
            pdb: Hex(0x7f_e000_0000),
            mappings: vec![MappingJson::new(0, 0x1000, 4096, Aperture::Vidmem, false)],
            stats: DemoStats {
                pte_writes: 1,
                tlb_invalidates: 2,
                window_moves: 3,
                page_tables_allocated: 4,
                page_tables_freed: 5,
            },
        };
        assert_eq!(
            js(&demo),
            concat!(
                r#"{"mmu":"v3","pdb":"0x7fe0000000","mappings":[{"va":"0x0","pa":"0x1000","page_size":4096,"aperture":"vidmem","read_only":false}],"#,
                r#""stats":{"pte_writes":1,"tlb_invalidates":2,"window_moves":3,"page_tables_allocated":4,"page_tables_freed":5}}"#
            )
        );
        let back: DemoJson = serde_json::from_str(&js(&demo)).unwrap();
        assert_eq!(back, demo);
        assert_eq!(js(&MmuJson::from(MmuVersion::V2)), r#""v2""#);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn hex_round_trips(v: u64) {
            let s = js(&Hex(v));
            proptest::prop_assert_eq!(&s, &format!("\"{v:#x}\""));
            proptest::prop_assert_eq!(serde_json::from_str::<Hex>(&s).unwrap(), Hex(v));
        }
    }

    #[test]
    fn hex_parsing_is_strict() {
        assert_eq!(serde_json::from_str::<Hex>(r#""0x1f""#).unwrap(), Hex(0x1f));
        for bad in [
            r#""0x1F""#,
            r#""1f""#,
            r#""0x""#,
            r#""0x10000000000000000""#,
            "31",
        ] {
            assert!(serde_json::from_str::<Hex>(bad).is_err(), "{bad}");
        }
        let t: TranslateJson = serde_json::from_str(r#"{"va":"0x4000","state":"sparse"}"#).unwrap();
        assert_eq!(t, TranslateJson::sparse(0x4000));
    }
}
