//! PCI addresses (`DDDD:BB:DD.F`).

use std::fmt;
use std::str::FromStr;

use crate::error::VfioError;

/// A PCI function address: domain, bus, device, function.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PciAddress {
    /// Domain (segment), 16 bits.
    pub domain: u16,
    /// Bus.
    pub bus: u8,
    /// Device, 0..=31.
    pub device: u8,
    /// Function, 0..=7.
    pub function: u8,
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl FromStr for PciAddress {
    type Err = VfioError;

    /// Accepts `DDDD:BB:DD.F` and the short `BB:DD.F` (domain 0), hexadecimal.
    fn from_str(s: &str) -> Result<Self, VfioError> {
        let bad = || VfioError::BadAddress(s.to_owned());
        let parts: Vec<&str> = s.trim().split(':').collect();
        let (domain, bus, rest) = match parts.as_slice() {
            [d, b, r] => (u16::from_str_radix(d, 16).map_err(|_| bad())?, *b, *r),
            [b, r] => (0, *b, *r),
            _ => return Err(bad()),
        };
        let (dev, func) = rest.split_once('.').ok_or_else(bad)?;
        let bus = u8::from_str_radix(bus, 16).map_err(|_| bad())?;
        let device = u8::from_str_radix(dev, 16).map_err(|_| bad())?;
        let function = u8::from_str_radix(func, 16).map_err(|_| bad())?;
        if device > 31 || function > 7 {
            return Err(bad());
        }
        Ok(PciAddress {
            domain,
            bus,
            device,
            function,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let a: PciAddress = "0000:01:00.0".parse().unwrap();
        assert_eq!(a.to_string(), "0000:01:00.0");
        let b: PciAddress = "c1:00.1".parse().unwrap();
        assert_eq!(b.to_string(), "0000:c1:00.1");
        for bad in [
            "",
            "01:00",
            "0000:01:20.0",
            "01:00.8",
            "zz:00.0",
            "1:2:3:4.0",
        ] {
            assert!(
                matches!(bad.parse::<PciAddress>(), Err(VfioError::BadAddress(_))),
                "{bad}"
            );
        }
    }
}
