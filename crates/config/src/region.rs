//! Intake regions and the base URL each one ships to.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Sekoia.io intake region. The region decides which intake base URL events go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Region {
    /// Europe, Frankfurt 1 (the historical default).
    #[default]
    Fra1,
    /// Europe, Frankfurt 2.
    Fra2,
    /// Monaco 1.
    Mco1,
    /// United Arab Emirates 1.
    Uae1,
    /// United States 1.
    Usa1,
    /// Singapore 1.
    Sgp1,
}

impl Region {
    /// Every region, in the order they are listed to users.
    pub const ALL: [Region; 6] = [
        Region::Fra1,
        Region::Fra2,
        Region::Mco1,
        Region::Uae1,
        Region::Usa1,
        Region::Sgp1,
    ];

    /// The lowercase name users write in config.yaml and on the command line (`fra1`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            Region::Fra1 => "fra1",
            Region::Fra2 => "fra2",
            Region::Mco1 => "mco1",
            Region::Uae1 => "uae1",
            Region::Usa1 => "usa1",
            Region::Sgp1 => "sgp1",
        }
    }

    /// The intake base URL of the region, without a trailing slash. The intake paths
    /// (`/batch`, `/array`, `/plain/batch`) are appended to it.
    pub fn base_url(&self) -> &'static str {
        match self {
            Region::Fra1 => "https://intake.sekoia.io",
            Region::Fra2 => "https://intake.fra2.sekoia.io/api/v1/intake-http",
            Region::Mco1 => "https://intake.mco1.sekoia.io/api/v1/intake-http",
            Region::Uae1 => "https://intake.uae1.sekoia.io/api/v1/intake-http",
            Region::Usa1 => "https://intake.usa1.sekoia.io/api/v1/intake-http",
            Region::Sgp1 => "https://intake.sgp1.sekoia.io/api/v1/intake-http",
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A region name that is not one of [`Region::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown region `{given}`; valid regions are {}", valid_regions())]
pub struct UnknownRegion {
    /// What the user wrote.
    pub given: String,
}

fn valid_regions() -> String {
    Region::ALL
        .iter()
        .map(Region::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for Region {
    type Err = UnknownRegion;

    /// Case-insensitive: `FRA1`, `fra1` and `Fra1` are the same region.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Region::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownRegion {
                given: s.to_owned(),
            })
    }
}

impl Serialize for Region {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_follow_the_design_table() {
        assert_eq!(Region::Fra1.base_url(), "https://intake.sekoia.io");
        for r in &Region::ALL[1..] {
            assert_eq!(
                r.base_url(),
                format!("https://intake.{}.sekoia.io/api/v1/intake-http", r.as_str())
            );
        }
    }

    #[test]
    fn parse_is_case_insensitive_and_round_trips() {
        for r in Region::ALL {
            assert_eq!(r.as_str().parse::<Region>(), Ok(r));
            assert_eq!(r.as_str().to_uppercase().parse::<Region>(), Ok(r));
        }
        assert_eq!("Usa1".parse::<Region>(), Ok(Region::Usa1));
    }

    #[test]
    fn unknown_region_lists_the_valid_ones() {
        let err = "mars1".parse::<Region>().unwrap_err().to_string();
        assert!(err.contains("`mars1`"), "{err}");
        assert!(err.contains("fra1, fra2, mco1, uae1, usa1, sgp1"), "{err}");
    }

    #[test]
    fn every_region_url_is_a_valid_intake_url() {
        for r in Region::ALL {
            let url: crate::IntakeUrl = r.base_url().parse().unwrap();
            assert_eq!(url.as_str(), r.base_url());
            assert_eq!(url.port(), 443);
        }
    }
}
