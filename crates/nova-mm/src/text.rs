//! Human-readable output: the same rows as the JSON, as aligned text.

use std::io::{self, Write};

use nova_mm_core::PageSize;

use crate::json::{ApertureJson, MappingJson, SparseJson, TranslateJson, VaState};

/// `4K`, `64K`, `2M`, `512M`, `256G` for GPU page sizes, else the byte count.
#[must_use]
pub fn page_size_name(bytes: u64) -> String {
    PageSize::from_bytes(bytes).map_or_else(|| bytes.to_string(), |p| p.to_string())
}

fn aperture_name(a: ApertureJson, peer: Option<u32>) -> String {
    match (a, peer) {
        (ApertureJson::Vidmem, _) => "vidmem".into(),
        (ApertureJson::Peer, Some(id)) => format!("peer{id}"),
        (ApertureJson::Peer, None) => "peer".into(),
        (ApertureJson::SysmemCoherent, _) => "sysmem-coherent".into(),
        (ApertureJson::SysmemNoncoherent, _) => "sysmem-noncoherent".into(),
    }
}

fn perm(read_only: bool) -> &'static str {
    if read_only {
        "ro"
    } else {
        "rw"
    }
}

/// One line per VA: `0x101234 -> 0x200001234 vidmem 4K rw`, `0x5000 unmapped`, `0x6000 sparse`.
///
/// # Errors
///
/// The writer's I/O error.
pub fn write_translations(out: &mut dyn Write, rows: &[TranslateJson]) -> io::Result<()> {
    for t in rows {
        match (t.state, t.pa, t.aperture, t.page_size, t.read_only) {
            (VaState::Mapped, Some(pa), Some(ap), Some(ps), Some(ro)) => writeln!(
                out,
                "{} -> {} {} {} {}",
                t.va,
                pa,
                aperture_name(ap, t.peer_id),
                page_size_name(ps),
                perm(ro)
            )?,
            (VaState::Sparse, ..) => writeln!(out, "{} sparse", t.va)?,
            _ => writeln!(out, "{} unmapped", t.va)?,
        }
    }
    Ok(())
}

/// A table with a header: VA, PA, SIZE, APERTURE, PERM.
///
/// # Errors
///
/// The writer's I/O error.
pub fn write_mappings_table(out: &mut dyn Write, rows: &[MappingJson]) -> io::Result<()> {
    writeln!(
        out,
        "{:<18} {:<18} {:>5} {:<18} PERM",
        "VA", "PA", "SIZE", "APERTURE"
    )?;
    for m in rows {
        writeln!(
            out,
            "{:<18} {:<18} {:>5} {:<18} {}",
            m.va.to_string(),
            m.pa.to_string(),
            page_size_name(m.page_size),
            aperture_name(m.aperture, m.peer_id),
            perm(m.read_only)
        )?;
    }
    Ok(())
}

/// A table with a header: VA, SIZE (bytes, hex).
///
/// # Errors
///
/// The writer's I/O error.
pub fn write_sparse_table(out: &mut dyn Write, rows: &[SparseJson]) -> io::Result<()> {
    writeln!(out, "{:<18} SIZE", "VA")?;
    for s in rows {
        writeln!(out, "{:<18} {:#x}", s.va.to_string(), s.size)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{Aperture, Hex};

    #[test]
    fn text_rows() {
        let mut out = Vec::new();
        write_translations(
            &mut out,
            &[
                TranslateJson::mapped(0x1234, 0x9234, Aperture::Peer { id: 2 }, 4096, true),
                TranslateJson::unmapped(0x5000),
                TranslateJson::sparse(0x6000),
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0x1234 -> 0x9234 peer2 4K ro\n0x5000 unmapped\n0x6000 sparse\n"
        );
        let mut out = Vec::new();
        write_mappings_table(
            &mut out,
            &[MappingJson::new(
                0x20_0000,
                0x4000_0000,
                0x20_0000,
                Aperture::Vidmem,
                false,
            )],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "VA                 PA                  SIZE APERTURE           PERM\n\
             0x200000           0x40000000            2M vidmem             rw\n"
        );
        let mut out = Vec::new();
        write_sparse_table(
            &mut out,
            &[SparseJson {
                va: Hex(0x1000),
                size: 0x2000,
            }],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "VA                 SIZE\n0x1000             0x2000\n"
        );
        assert_eq!(page_size_name(12345), "12345");
    }
}
