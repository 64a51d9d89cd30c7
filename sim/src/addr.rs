//! Per-host loopback addresses. A real inventory names each server by its own address and uses
//! cPanel's ports 2087 and 2083; to look like one, a fleet in `Addressing::PerHost` gives every
//! host its own address in 127.0.0.0/8 (Linux routes all of it to the loopback device).
//!
//! Fleets run at once: tests in parallel in one process, benches and demos in others. So a fleet
//! claims its addresses before using them: the range 127.16.0.0–127.250.255.255 is cut into units
//! of 4,096 addresses; a unit's first address is never a host's but holds a marker listener on
//! port 2087 while the fleet runs. Binding the marker is the claim: the kernel refuses a second
//! one (EADDRINUSE), in any process, and the claimer picks another random unit. A host that is
//! `down` binds nothing, yet its address stays inside the claimed unit, so it can come back up.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener};

use anyhow::{Context, bail};

/// cPanel's ports, as a real server has them.
pub(crate) const WHM_PORT: u16 = 2087;
pub(crate) const CPANEL_PORT: u16 = 2083;

const FIRST: u32 = u32::from_be_bytes([127, 16, 0, 0]);
const END: u32 = u32::from_be_bytes([127, 251, 0, 0]);
const UNIT: u32 = 4096;
const UNITS: u32 = (END - FIRST) / UNIT;
/// Hosts per unit: all its addresses but the first (the marker's).
const PER_UNIT: u32 = UNIT - 1;

/// A run of claimed units, held while the fleet runs.
pub(crate) struct Block {
    first_unit: u32,
    _markers: Vec<TcpListener>,
}

impl Block {
    /// Claim enough consecutive units for `hosts` hosts, starting at a random unit.
    pub fn claim(hosts: usize) -> anyhow::Result<Block> {
        let need = (hosts as u32).div_ceil(PER_UNIT).max(1);
        if hosts as u64 > (UNITS as u64) * PER_UNIT as u64 {
            bail!("{hosts} hosts do not fit in 127.16.0.0–127.250.255.255");
        }
        for _ in 0..200 {
            let first_unit = fastrand::u32(0..=UNITS - need);
            let mut markers = Vec::with_capacity(need as usize);
            let mut taken = false;
            for u in first_unit..first_unit + need {
                let ip = Ipv4Addr::from(FIRST + u * UNIT);
                match TcpListener::bind((ip, WHM_PORT)) {
                    Ok(l) => markers.push(l),
                    Err(e) if e.kind() == ErrorKind::AddrInUse => {
                        taken = true;
                        break;
                    }
                    Err(e) => {
                        return Err(e).with_context(|| format!("binding {ip}:{WHM_PORT}"));
                    }
                }
            }
            if !taken {
                return Ok(Block {
                    first_unit,
                    _markers: markers,
                });
            }
        }
        bail!("no free block of loopback addresses in 127.16.0.0–127.250.255.255 after 200 tries")
    }

    /// The address of host `i` (0-based) of the fleet.
    pub fn address(&self, i: usize) -> Ipv4Addr {
        let i = i as u32;
        let unit = self.first_unit + i / PER_UNIT;
        Ipv4Addr::from(FIRST + unit * UNIT + i % PER_UNIT + 1)
    }
}

/// True for the error of a port someone else holds (possibly inside an anyhow chain).
pub(crate) fn in_use(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::AddrInUse)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_the_marker_and_stay_in_range() {
        let b = Block {
            first_unit: UNITS - 3,
            _markers: Vec::new(),
        };
        assert_eq!(b.address(0).octets()[3], 1);
        let last = b.address(3 * PER_UNIT as usize - 1);
        assert!(u32::from(last) < END);
        // The 4,096th host starts the next unit after its marker.
        assert_eq!(
            u32::from(b.address(PER_UNIT as usize)),
            FIRST + (UNITS - 2) * UNIT + 1
        );
        assert!(u32::from(b.address(0)) >= FIRST);
    }
}
