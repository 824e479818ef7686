//! VFIO region information: size, file offset, flags and the sparse-mmap capability.
//!
//! The kernel returns a `vfio_region_info` followed by a capability chain when `argsz` was large
//! enough; [`parse_region_info`] decodes that buffer using the layouts from `vfio-bindings`.

use std::mem::{offset_of, size_of};

use vfio_bindings::bindings::vfio::{
    vfio_info_cap_header, vfio_region_info, vfio_region_info_cap_sparse_mmap,
    vfio_region_sparse_mmap_area, VFIO_REGION_INFO_CAP_SPARSE_MMAP, VFIO_REGION_INFO_FLAG_CAPS,
    VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};

use crate::error::VfioError;

/// One mmap-able part of a region, relative to the region start.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MmapArea {
    /// Offset from the region start.
    pub offset: u64,
    /// Length in bytes.
    pub size: u64,
}

/// What the kernel reports about one region.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RegionInfo {
    /// The region index (`VFIO_PCI_BAR0_REGION_INDEX` = 0, ...).
    pub index: u32,
    /// Size in bytes (0 for an absent BAR).
    pub size: u64,
    /// Offset of the region in the device file (for `pread`/`pwrite`/`mmap`).
    pub offset: u64,
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// May be mmapped.
    pub mmap: bool,
    /// When present, only these areas may be mmapped (`VFIO_REGION_INFO_CAP_SPARSE_MMAP`);
    /// when absent and [`RegionInfo::mmap`] is set, the whole region may be.
    pub sparse: Option<Vec<MmapArea>>,
}

impl RegionInfo {
    /// The areas to mmap: the sparse areas, the whole region, or none.
    #[must_use]
    pub fn mmap_areas(&self) -> Vec<MmapArea> {
        if !self.mmap || self.size == 0 {
            return Vec::new();
        }
        match &self.sparse {
            Some(areas) => areas.clone(),
            None => vec![MmapArea {
                offset: 0,
                size: self.size,
            }],
        }
    }
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes(b.try_into().ok()?))
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    let b = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes(b.try_into().ok()?))
}

fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    let b = buf.get(at..at.checked_add(8)?)?;
    Some(u64::from_ne_bytes(b.try_into().ok()?))
}

/// The `argsz` the kernel asked for, from a first `VFIO_DEVICE_GET_REGION_INFO` reply.
#[must_use]
pub fn required_argsz(buf: &[u8]) -> Option<u32> {
    u32_at(buf, offset_of!(vfio_region_info, argsz))
}

/// Decodes a `VFIO_DEVICE_GET_REGION_INFO` reply for region `index`.
///
/// # Errors
///
/// [`VfioError::BadRegionInfo`] when the buffer is short, a capability points outside it, the
/// chain loops, or a sparse area lies outside the region.
pub fn parse_region_info(index: u32, buf: &[u8]) -> Result<RegionInfo, VfioError> {
    let bad = |what| VfioError::BadRegionInfo { index, what };
    if buf.len() < size_of::<vfio_region_info>() {
        return Err(bad("reply shorter than vfio_region_info"));
    }
    let flags = u32_at(buf, offset_of!(vfio_region_info, flags)).ok_or_else(|| bad("flags"))?;
    let size = u64_at(buf, offset_of!(vfio_region_info, size)).ok_or_else(|| bad("size"))?;
    let offset = u64_at(buf, offset_of!(vfio_region_info, offset)).ok_or_else(|| bad("offset"))?;
    let mut info = RegionInfo {
        index,
        size,
        offset,
        read: flags & VFIO_REGION_INFO_FLAG_READ != 0,
        write: flags & VFIO_REGION_INFO_FLAG_WRITE != 0,
        mmap: flags & VFIO_REGION_INFO_FLAG_MMAP != 0,
        sparse: None,
    };
    if flags & VFIO_REGION_INFO_FLAG_CAPS == 0 {
        return Ok(info);
    }
    let mut next =
        u32_at(buf, offset_of!(vfio_region_info, cap_offset)).ok_or_else(|| bad("cap_offset"))?;
    let mut hops = 0;
    while next != 0 {
        hops += 1;
        if hops > 64 {
            return Err(bad("capability chain loops"));
        }
        let at = usize::try_from(next).map_err(|_| bad("capability offset"))?;
        if at < size_of::<vfio_region_info>()
            || at.saturating_add(size_of::<vfio_info_cap_header>()) > buf.len()
        {
            return Err(bad("capability outside the reply"));
        }
        let id =
            u16_at(buf, at + offset_of!(vfio_info_cap_header, id)).ok_or_else(|| bad("cap id"))?;
        let following = u32_at(buf, at + offset_of!(vfio_info_cap_header, next))
            .ok_or_else(|| bad("cap next"))?;
        if u32::from(id) == VFIO_REGION_INFO_CAP_SPARSE_MMAP {
            let nr = u32_at(
                buf,
                at + offset_of!(vfio_region_info_cap_sparse_mmap, nr_areas),
            )
            .ok_or_else(|| bad("sparse nr_areas"))?;
            let first = at + size_of::<vfio_region_info_cap_sparse_mmap>();
            let area_size = size_of::<vfio_region_sparse_mmap_area>();
            let mut areas = Vec::new();
            for i in 0..usize::try_from(nr).map_err(|_| bad("sparse nr_areas"))? {
                let a = first
                    .checked_add(i.checked_mul(area_size).ok_or_else(|| bad("sparse area"))?)
                    .ok_or_else(|| bad("sparse area"))?;
                let off = u64_at(buf, a + offset_of!(vfio_region_sparse_mmap_area, offset))
                    .ok_or_else(|| bad("sparse area outside the reply"))?;
                let len = u64_at(buf, a + offset_of!(vfio_region_sparse_mmap_area, size))
                    .ok_or_else(|| bad("sparse area outside the reply"))?;
                match off.checked_add(len) {
                    Some(end) if end <= size => {}
                    _ => return Err(bad("sparse area outside the region")),
                }
                if len > 0 {
                    areas.push(MmapArea {
                        offset: off,
                        size: len,
                    });
                }
            }
            info.sparse = Some(areas);
        }
        next = following;
    }
    Ok(info)
}

/// Builds a reply buffer as the kernel would (for tests and fakes).
#[must_use]
pub fn encode_region_info(info: &RegionInfo) -> Vec<u8> {
    let mut flags = 0;
    if info.read {
        flags |= VFIO_REGION_INFO_FLAG_READ;
    }
    if info.write {
        flags |= VFIO_REGION_INFO_FLAG_WRITE;
    }
    if info.mmap {
        flags |= VFIO_REGION_INFO_FLAG_MMAP;
    }
    let head = size_of::<vfio_region_info>();
    let mut buf = vec![0u8; head];
    let put32 =
        |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    let put64 =
        |b: &mut Vec<u8>, at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    if let Some(areas) = &info.sparse {
        flags |= VFIO_REGION_INFO_FLAG_CAPS;
        let cap = head;
        let total = cap
            + size_of::<vfio_region_info_cap_sparse_mmap>()
            + areas.len() * size_of::<vfio_region_sparse_mmap_area>();
        buf.resize(total, 0);
        buf[cap + offset_of!(vfio_info_cap_header, id)..][..2]
            .copy_from_slice(&(VFIO_REGION_INFO_CAP_SPARSE_MMAP as u16).to_ne_bytes());
        put32(
            &mut buf,
            cap + offset_of!(vfio_region_info_cap_sparse_mmap, nr_areas),
            areas.len() as u32,
        );
        for (i, a) in areas.iter().enumerate() {
            let at = cap
                + size_of::<vfio_region_info_cap_sparse_mmap>()
                + i * size_of::<vfio_region_sparse_mmap_area>();
            put64(
                &mut buf,
                at + offset_of!(vfio_region_sparse_mmap_area, offset),
                a.offset,
            );
            put64(
                &mut buf,
                at + offset_of!(vfio_region_sparse_mmap_area, size),
                a.size,
            );
        }
        put32(
            &mut buf,
            offset_of!(vfio_region_info, cap_offset),
            cap as u32,
        );
    }
    let argsz = buf.len() as u32;
    put32(&mut buf, offset_of!(vfio_region_info, argsz), argsz);
    put32(&mut buf, offset_of!(vfio_region_info, flags), flags);
    put32(&mut buf, offset_of!(vfio_region_info, index), info.index);
    put64(&mut buf, offset_of!(vfio_region_info, size), info.size);
    put64(&mut buf, offset_of!(vfio_region_info, offset), info.offset);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar0(sparse: Option<Vec<MmapArea>>) -> RegionInfo {
        RegionInfo {
            index: 0,
            size: 16 << 20,
            offset: 0,
            read: true,
            write: true,
            mmap: true,
            sparse,
        }
    }

    #[test]
    fn round_trip_with_and_without_sparse_areas() {
        for info in [
            bar0(None),
            bar0(Some(vec![
                MmapArea {
                    offset: 0,
                    size: 0x1000,
                },
                MmapArea {
                    offset: 0x2000,
                    size: (16 << 20) - 0x2000,
                },
            ])),
        ] {
            let buf = encode_region_info(&info);
            assert_eq!(required_argsz(&buf), Some(buf.len() as u32));
            assert_eq!(parse_region_info(0, &buf).unwrap(), info);
        }
        assert_eq!(
            bar0(None).mmap_areas(),
            vec![MmapArea {
                offset: 0,
                size: 16 << 20
            }]
        );
        let mut no_mmap = bar0(None);
        no_mmap.mmap = false;
        assert!(no_mmap.mmap_areas().is_empty());
    }

    #[test]
    fn malformed_replies_are_rejected() {
        assert!(parse_region_info(0, &[0; 8]).is_err());
        let info = bar0(Some(vec![MmapArea {
            offset: 16 << 20,
            size: 0x1000,
        }]));
        assert!(matches!(
            parse_region_info(0, &encode_region_info(&info)),
            Err(VfioError::BadRegionInfo {
                what: "sparse area outside the region",
                ..
            })
        ));
        let mut buf = encode_region_info(&bar0(Some(vec![])));
        // Truncate the capability.
        buf.truncate(size_of::<vfio_region_info>() + 4);
        assert!(parse_region_info(0, &buf).is_err());
        // A chain that points to itself.
        let mut buf = encode_region_info(&bar0(Some(vec![])));
        let cap = size_of::<vfio_region_info>();
        let at = cap + offset_of!(vfio_info_cap_header, next);
        buf[at..at + 4].copy_from_slice(&(cap as u32).to_ne_bytes());
        assert!(matches!(
            parse_region_info(0, &buf),
            Err(VfioError::BadRegionInfo {
                what: "capability chain loops",
                ..
            })
        ));
    }
}
