//! Parsing of command-line values: addresses (hex `0x...` or decimal), chips, PCI addresses.
//!
//! Every parser returns a typed error whose message fits on one line; clap shows it as
//! `invalid value '...' for '--pdb <ADDR>': <message>`.

use std::fmt;
use std::str::FromStr;

use nova_mm_core::Chip;

/// Why an address or number did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseAddrError {
    /// Nothing was given.
    #[error("empty address")]
    Empty,
    /// `0x` followed by something that is not a hexadecimal number.
    #[error("'{0}' is not a hexadecimal number (expected 0x followed by hex digits)")]
    InvalidHex(String),
    /// Not `0x...` and not a decimal number.
    #[error("'{0}' is not an address (expected hex 0x... or decimal)")]
    InvalidDecimal(String),
    /// The value does not fit in 64 bits.
    #[error("'{0}' does not fit in 64 bits")]
    Overflow(String),
}

/// Parses `0x1f000` / `0X1F000` (hexadecimal) or `126976` (decimal) into a `u64`.
///
/// # Errors
///
/// [`ParseAddrError`] for empty, malformed or too large input. Signs, spaces and underscores are
/// rejected.
pub fn parse_u64(s: &str) -> Result<u64, ParseAddrError> {
    if s.is_empty() {
        return Err(ParseAddrError::Empty);
    }
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (s, 10),
    };
    let valid = !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
    if !valid {
        return Err(if radix == 16 {
            ParseAddrError::InvalidHex(s.to_owned())
        } else {
            ParseAddrError::InvalidDecimal(s.to_owned())
        });
    }
    // Only digits remain, so the only possible failure is overflow.
    u64::from_str_radix(digits, radix).map_err(|_| ParseAddrError::Overflow(s.to_owned()))
}

/// Why a chip name was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown chip '{0}' (known: pascal, volta, turing, ampere, ada, hopper, gb10x, gb20x, or a chip such as tu102, ga102, gh100, gb202)")]
pub struct UnknownChip(pub String);

/// Parses a chip family or chip name (see [`Chip`]'s `FromStr`).
///
/// # Errors
///
/// [`UnknownChip`].
pub fn parse_chip(s: &str) -> Result<Chip, UnknownChip> {
    Chip::from_str(s).map_err(|_| UnknownChip(s.to_owned()))
}

/// A PCI device address `[DDDD:]BB:DD.F` (domain, bus, device, function), as sysfs names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PciAddress {
    /// PCI domain (segment).
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number, `0..=31`.
    pub device: u8,
    /// Function number, `0..=7`.
    pub function: u8,
}

/// Why a PCI address did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a PCI address (expected [DDDD:]BB:DD.F in hex, e.g. 0000:01:00.0)")]
pub struct BadPciAddress(pub String);

impl FromStr for PciAddress {
    type Err = BadPciAddress;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPciAddress(s.to_owned());
        let hex = |t: &str, max_len: usize| -> Result<u32, BadPciAddress> {
            if t.is_empty() || t.len() > max_len || !t.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            u32::from_str_radix(t, 16).map_err(|_| bad())
        };
        let parts: Vec<&str> = s.split(':').collect();
        let (domain, bus, devfn) = match parts.as_slice() {
            [d, b, df] => (hex(d, 4)?, *b, *df),
            [b, df] => (0, *b, *df),
            _ => return Err(bad()),
        };
        let (dev, func) = devfn.split_once('.').ok_or_else(bad)?;
        let bus = hex(bus, 2)?;
        let device = hex(dev, 2)?;
        let function = hex(func, 1)?;
        if device > 31 || function > 7 {
            return Err(bad());
        }
        Ok(PciAddress {
            domain: u16::try_from(domain).map_err(|_| bad())?,
            bus: u8::try_from(bus).map_err(|_| bad())?,
            device: u8::try_from(device).map_err(|_| bad())?,
            function: u8::try_from(function).map_err(|_| bad())?,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(parse_u64("0x1f000"), Ok(0x1f000));
        assert_eq!(parse_u64("0X1F000"), Ok(0x1f000));
        assert_eq!(parse_u64("4096"), Ok(4096));
        assert_eq!(parse_u64("0"), Ok(0));
        assert_eq!(parse_u64("0xffffffffffffffff"), Ok(u64::MAX));
        assert_eq!(parse_u64("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_u64(""), Err(ParseAddrError::Empty));
        assert_eq!(
            parse_u64("0x"),
            Err(ParseAddrError::InvalidHex("0x".into()))
        );
        assert_eq!(
            parse_u64("0xg"),
            Err(ParseAddrError::InvalidHex("0xg".into()))
        );
        assert_eq!(
            parse_u64("12a"),
            Err(ParseAddrError::InvalidDecimal("12a".into()))
        );
        assert_eq!(
            parse_u64("-1"),
            Err(ParseAddrError::InvalidDecimal("-1".into()))
        );
        assert_eq!(
            parse_u64("+1"),
            Err(ParseAddrError::InvalidDecimal("+1".into()))
        );
        assert_eq!(
            parse_u64(" 1"),
            Err(ParseAddrError::InvalidDecimal(" 1".into()))
        );
        assert_eq!(
            parse_u64("0x10000000000000000"),
            Err(ParseAddrError::Overflow("0x10000000000000000".into()))
        );
        assert_eq!(
            parse_u64("18446744073709551616"),
            Err(ParseAddrError::Overflow("18446744073709551616".into()))
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn hex_and_decimal_round_trip(v: u64) {
            proptest::prop_assert_eq!(parse_u64(&format!("{v:#x}")), Ok(v));
            proptest::prop_assert_eq!(parse_u64(&format!("{v:#X}").replacen("0X", "0x", 1)), Ok(v));
            proptest::prop_assert_eq!(parse_u64(&v.to_string()), Ok(v));
        }

        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_u64(&s);
            let _ = s.parse::<PciAddress>();
        }
    }

    #[test]
    fn chips() {
        assert_eq!(parse_chip("hopper"), Ok(Chip::Hopper));
        assert_eq!(parse_chip("GA102"), Ok(Chip::Ampere));
        assert_eq!(parse_chip("rtx9090"), Err(UnknownChip("rtx9090".into())));
    }

    #[test]
    fn pci_addresses() {
        let a: PciAddress = "0000:01:00.0".parse().unwrap();
        assert_eq!(
            a,
            PciAddress {
                domain: 0,
                bus: 1,
                device: 0,
                function: 0
            }
        );
        assert_eq!(a.to_string(), "0000:01:00.0");
        let b: PciAddress = "3b:1f.7".parse().unwrap();
        assert_eq!(b.to_string(), "0000:3b:1f.7");
        for bad in [
            "",
            "01:00",
            "0000:01:20.0",
            "0000:01:00.8",
            "00000:01:00.0",
            "0000:001:00.0",
            "0000:01:00.0.1",
            "zz:00.0",
            "1:2:3:4.0",
            "0000:01:00.",
        ] {
            assert!(bad.parse::<PciAddress>().is_err(), "{bad}");
        }
    }
}
