//! The backend's logic against a fake VFIO device.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::ptr::NonNull;
use std::rc::Rc;

use nova_mm_core::hw::hal::architecture_number;
use nova_mm_core::hw::mmio::Mmio;
use nova_mm_core::hw::pramin::{Pramin, PraminReadBack};
use nova_mm_core::hw::tlb_regs::{Clock, TlbRegs};
use nova_mm_core::{Chip, InvalidateRequest, TlbError, TlbInvalidate, VramAccess, VramAddress};
use rustix::mm::{mmap_anonymous, MapFlags, ProtFlags};

use crate::*;

const REGION_SHIFT: u32 = 40;

/// A fake device file: regions at `index << 40` like vfio-pci, sparse byte memory.
#[derive(Debug)]
struct Fake {
    regions: HashMap<u32, RegionInfo>,
    mem: RefCell<HashMap<u64, u8>>,
    refuse_map: bool,
    maps: Cell<u32>,
}

impl Fake {
    fn new(vendor: u16, bar0_size: u64, boot42: u32, sparse: Option<Vec<MmapArea>>) -> Rc<Fake> {
        let region = |index: u32, size: u64, sparse: Option<Vec<MmapArea>>| RegionInfo {
            index,
            size,
            offset: u64::from(index) << REGION_SHIFT,
            read: true,
            write: true,
            mmap: index != 7,
            sparse,
        };
        let mut regions = HashMap::new();
        regions.insert(0, region(0, bar0_size, sparse));
        regions.insert(1, region(1, 256 << 20, None));
        regions.insert(7, region(7, 256, None));
        let fake = Fake {
            regions,
            mem: RefCell::new(HashMap::new()),
            refuse_map: false,
            maps: Cell::new(0),
        };
        fake.poke(7 << REGION_SHIFT, &vendor.to_le_bytes());
        fake.poke(0xA00, &boot42.to_le_bytes());
        Rc::new(fake)
    }

    fn poke(&self, at: u64, bytes: &[u8]) {
        let mut m = self.mem.borrow_mut();
        for (i, b) in bytes.iter().enumerate() {
            m.insert(at + i as u64, *b);
        }
    }

    fn peek32(&self, at: u64) -> u32 {
        let m = self.mem.borrow();
        u32::from_le_bytes(std::array::from_fn(|i| {
            *m.get(&(at + i as u64)).unwrap_or(&0)
        }))
    }
}

impl DeviceFd for Rc<Fake> {
    fn region_info(&self, index: u32) -> Result<RegionInfo, VfioError> {
        // Through the wire format, as the kernel returns it.
        let info = self.regions.get(&index).cloned().unwrap_or(RegionInfo {
            index,
            size: 0,
            offset: 0,
            read: false,
            write: false,
            mmap: false,
            sparse: None,
        });
        region::parse_region_info(index, &region::encode_region_info(&info))
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let m = self.mem.borrow();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = *m.get(&(offset + i as u64)).unwrap_or(&0);
        }
        Ok(buf.len())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.poke(offset, buf);
        Ok(buf.len())
    }
    fn map(&self, offset: u64, len: usize) -> io::Result<Mapping> {
        if self.refuse_map {
            return Err(io::Error::from_raw_os_error(22));
        }
        self.maps.set(self.maps.get() + 1);
        // SAFETY: a fresh private anonymous mapping, owned by the returned Mapping.
        let p = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }?;
        let ptr = NonNull::new(p.cast::<u8>()).unwrap();
        // Copy what the fake holds into the mapping so both paths agree at the start.
        for (&a, &b) in self.mem.borrow().iter() {
            if a >= offset && a < offset + len as u64 {
                // SAFETY: inside the fresh mapping.
                unsafe { *ptr.as_ptr().add((a - offset) as usize) = b };
            }
        }
        // SAFETY: `ptr` is a live mapping of `len` bytes owned by nobody else.
        Ok(unsafe { Mapping::from_raw(ptr, len) })
    }
}

fn addr() -> PciAddress {
    "0000:01:00.0".parse().unwrap()
}

fn ada_boot42() -> u32 {
    (architecture_number(Chip::Ada) << 24) | (2 << 20)
}

/// Registers mmap-able, the PRAMIN aperture not (it must fall back to pread/pwrite).
fn sparse_registers_only() -> Option<Vec<MmapArea>> {
    Some(vec![
        MmapArea {
            offset: 0,
            size: 0x70_0000,
        },
        MmapArea {
            offset: 0x80_0000,
            size: 0x80_0000,
        },
    ])
}

#[test]
fn opens_identifies_and_honours_sparse_areas() {
    let fake = Fake::new(0x10de, 16 << 20, ada_boot42(), sparse_registers_only());
    let gpu = VfioGpu::from_device(addr(), fake.clone(), OpenOptions::default()).unwrap();
    assert_eq!(gpu.chip().chip, Chip::Ada);
    assert_eq!(gpu.chip().chipset(), 0x192);
    let bar0 = gpu.bar0();
    assert_eq!(bar0.mapped_bytes(), (16 << 20) - (1 << 20));
    // BOOT_42 came through the mapping.
    assert_eq!(bar0.stats().mapped, 2);
    assert_eq!(bar0.stats().syscalls, 0);
    // PRAMIN is outside the sparse areas: pwrite, visible in the device file.
    bar0.write32(0x70_0010, 0xCAFE_BABE).unwrap();
    assert_eq!(fake.peek32(0x70_0010), 0xCAFE_BABE);
    assert_eq!(bar0.read32(0x70_0010).unwrap(), 0xCAFE_BABE);
    assert_eq!(bar0.stats().syscalls, 2);
    // An access straddling nothing odd: 64-bit through the mapping.
    bar0.write64(0x1000, 0x1122_3344_5566_7788).unwrap();
    assert_eq!(bar0.read64(0x1000).unwrap(), 0x1122_3344_5566_7788);
    assert_eq!(bar0.read8(0x1000).unwrap(), 0x88);
    assert!(bar0.read32(16 << 20).is_err());
    assert!(bar0.read32(2).is_err());
    let bar1 = gpu.bar1().unwrap();
    assert_eq!(bar1.bar_size(), 256 << 20);
}

#[test]
fn pread_fallback_when_mapping_is_refused_or_disabled() {
    for disabled in [false, true] {
        let mut fake = Fake::new(0x10de, 16 << 20, ada_boot42(), None);
        if !disabled {
            Rc::get_mut(&mut fake).unwrap().refuse_map = true;
        }
        let opts = OpenOptions {
            map_bars: !disabled,
            bar1: false,
            ..OpenOptions::default()
        };
        let gpu = VfioGpu::from_device(addr(), fake.clone(), opts).unwrap();
        assert_eq!(gpu.bar0().mapped_bytes(), 0);
        assert!(gpu.bar1().is_none());
        gpu.bar0().write32(0x1700, 0x10).unwrap();
        assert_eq!(fake.peek32(0x1700), 0x10);
        assert_eq!(gpu.bar0().stats().mapped, 0);
    }
}

#[test]
fn each_failure_has_its_error() {
    let e = VfioGpu::from_device(
        addr(),
        Fake::new(0x1002, 16 << 20, ada_boot42(), None),
        OpenOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, VfioError::NotNvidia { vendor: 0x1002, .. }));
    assert!(e.to_string().contains("not an NVIDIA GPU"));
    let e = VfioGpu::from_device(
        addr(),
        Fake::new(0x10de, 8 << 20, ada_boot42(), None),
        OpenOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, VfioError::BarTooSmall { bar: 0, size, .. } if size == 8 << 20));
    assert!(e.to_string().contains("BAR0"));
    let e = VfioGpu::from_device(
        addr(),
        Fake::new(0x10de, 16 << 20, 0x0400_0000, None),
        OpenOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, VfioError::UnknownChip(_)));
    assert!(e.to_string().contains("unknown GPU"));
    let e = VfioError::opening("/dev/vfio/7", io::ErrorKind::PermissionDenied.into());
    assert!(matches!(&e, VfioError::PermissionDenied { .. }));
    assert!(e
        .to_string()
        .contains("permission denied opening /dev/vfio/7"));
    let e = VfioError::opening("/dev/vfio/7", io::ErrorKind::NotFound.into());
    assert!(matches!(e, VfioError::Io { .. }));
    let info = sysfs::DeviceInfo {
        addr: addr(),
        vendor: 0x10de,
        device: 0x2684,
        iommu_group: 3,
        noiommu: false,
        cdev: None,
    };
    assert!(matches!(
        RealDevice::open(&info, Interface::Cdev),
        Err(VfioError::NoCdev(_))
    ));
    assert!(VfioError::NoIommuGroup(addr())
        .to_string()
        .contains("enable the IOMMU"));
    assert!(VfioError::GroupNotViable(3)
        .to_string()
        .contains("not viable"));
}

/// A clock advancing 1 µs per reading.
struct FakeClock(u64);
impl Clock for FakeClock {
    fn now_ns(&mut self) -> u64 {
        self.0 += 1_000;
        self.0
    }
    fn delay_ns(&mut self, ns: u64) {
        self.0 += ns;
    }
}

#[test]
fn core_pramin_and_tlb_run_on_a_vfio_bar() {
    let fake = Fake::new(0x10de, 16 << 20, ada_boot42(), sparse_registers_only());
    let gpu = VfioGpu::from_device(addr(), fake.clone(), OpenOptions::default()).unwrap();
    let mut p = Pramin::new(gpu.bar0(), gpu.chip().chip, 1 << 30).unwrap();
    assert!(p.uses_64bit());
    p.write64(VramAddress::new(0x20_0008), 0xAB).unwrap();
    // The window register is in a mapped area, the aperture is served by pwrite.
    assert_eq!(gpu.bar0().read32(0x1700).unwrap(), 0x20);
    assert_eq!(fake.peek32(0x70_0008), 0xAB);
    let mut t = TlbRegs::new(
        gpu.bar0(),
        gpu.chip().chip,
        FakeClock(0),
        PraminReadBack::new(gpu.bar0()),
    )
    .with_timeout_ns(10_000);
    // No hardware behind the fake: TRIGGER stays as written, so the invalidate times out.
    assert_eq!(
        t.invalidate(&InvalidateRequest::EVERYTHING),
        Err(TlbError::Timeout)
    );
}
