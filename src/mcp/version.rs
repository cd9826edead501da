//! MCP protocol versions as a type. Each version belongs to an era: the initialize-based
//! versions (negotiated in `initialize`) or the 2026-07-28 era (a `_meta` envelope on every
//! request, no `initialize`). What differs between versions is decided by matches over this
//! enum, so a new version does not build until every such rule says what it does.

/// A protocol version FlowCP speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    V2025_03_26,
    V2025_06_18,
    V2025_11_25,
    V2026_07_28,
}

/// How a version starts a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    /// `initialize` negotiates the version.
    Initialize,
    /// Every request carries the version in `_meta` (2026-07-28).
    Envelope,
}

impl ProtocolVersion {
    /// Every version, newest first (the order error messages list them in).
    pub const ALL: [ProtocolVersion; 4] = [Self::V2026_07_28, Self::V2025_11_25, Self::V2025_06_18, Self::V2025_03_26];
    /// What `initialize` answers when the client asks for a version we do not speak.
    pub const LATEST_INITIALIZE: ProtocolVersion = Self::V2025_11_25;
    /// What a request without `MCP-Protocol-Version` is assumed to speak (spec rule).
    pub const DEFAULT: ProtocolVersion = Self::V2025_03_26;

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2025_03_26 => "2025-03-26",
            Self::V2025_06_18 => "2025-06-18",
            Self::V2025_11_25 => "2025-11-25",
            Self::V2026_07_28 => "2026-07-28",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn era(self) -> Era {
        match self {
            Self::V2025_03_26 | Self::V2025_06_18 | Self::V2025_11_25 => Era::Initialize,
            Self::V2026_07_28 => Era::Envelope,
        }
    }

    /// JSON-RPC batches were allowed in 2025-03-26 only.
    pub fn allows_batches(self) -> bool {
        match self {
            Self::V2025_03_26 => true,
            Self::V2025_06_18 | Self::V2025_11_25 | Self::V2026_07_28 => false,
        }
    }

    /// The versions of one era, newest first.
    pub fn of_era(era: Era) -> impl Iterator<Item = ProtocolVersion> {
        Self::ALL.into_iter().filter(move |v| v.era() == era)
    }

    /// Every version's string, newest first (for "supported" lists in errors).
    pub fn all_strs() -> Vec<&'static str> {
        Self::ALL.iter().map(|v| v.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_and_eras_are_as_the_specs_say() {
        for v in ProtocolVersion::ALL {
            assert_eq!(ProtocolVersion::parse(v.as_str()), Some(v));
        }
        assert_eq!(ProtocolVersion::parse("2024-11-05"), None);
        assert_eq!(ProtocolVersion::parse(" 2025-06-18"), None, "exact strings only");
        let initialize: Vec<_> = ProtocolVersion::of_era(Era::Initialize).map(ProtocolVersion::as_str).collect();
        assert_eq!(initialize, ["2025-11-25", "2025-06-18", "2025-03-26"]);
        assert_eq!(ProtocolVersion::LATEST_INITIALIZE.era(), Era::Initialize);
        assert_eq!(ProtocolVersion::ALL.map(ProtocolVersion::allows_batches), [false, false, false, true]);
    }
}
