// SPDX-License-Identifier: GPL-2.0
//! The documents leaklab writes with `--format json`, each named by its
//! `schema` field (`leaklab.KIND/VERSION`), as
//! Documentation/schema/leaklab-1.schema.json describes them.

/// A kind of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// `leaklab cycle` and `leaklab matrix`.
    Cycle,
    /// `leaklab check`.
    Check,
    /// `leaklab doctor`.
    Doctor,
    /// `leaklab soak`.
    Soak,
    /// `leaklab census`.
    Census,
    /// `leaklab sweep`.
    Sweep,
    /// `leaklab faults`.
    Faults,
    /// `leaklab fuzz`.
    Fuzz,
    /// `leaklab selftest`.
    Selftest,
    /// `leaklab parse`.
    Parse,
    /// `leaklab scan`.
    Scan,
    /// `leaklab watch`'s summary.
    Watch,
    /// A line of a watch's event log.
    WatchEvent,
    /// A watch directory's `state.json`.
    WatchState,
    /// `leaklab lava results`.
    LavaResults,
}

/// Every kind, for lookups.
const ALL: [Schema; 15] = [
    Schema::Cycle,
    Schema::Check,
    Schema::Doctor,
    Schema::Soak,
    Schema::Census,
    Schema::Sweep,
    Schema::Faults,
    Schema::Fuzz,
    Schema::Selftest,
    Schema::Parse,
    Schema::Scan,
    Schema::Watch,
    Schema::WatchEvent,
    Schema::WatchState,
    Schema::LavaResults,
];

impl Schema {
    /// The `schema` field this version of leaklab writes.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Cycle => "leaklab.cycle/1",
            Self::Check => "leaklab.check/1",
            Self::Doctor => "leaklab.doctor/1",
            Self::Soak => "leaklab.soak/1",
            Self::Census => "leaklab.census/1",
            Self::Sweep => "leaklab.sweep/1",
            Self::Faults => "leaklab.faults/1",
            Self::Fuzz => "leaklab.fuzz/1",
            Self::Selftest => "leaklab.selftest/1",
            Self::Parse => "leaklab.parse/1",
            Self::Scan => "leaklab.scan/1",
            Self::Watch => "leaklab.watch/1",
            Self::WatchEvent => "leaklab.watch-event/1",
            Self::WatchState => "leaklab.watch-state/1",
            Self::LavaResults => "leaklab.lava-results/1",
        }
    }

    /// The kind a `schema` field names, of any version (`leaklab.check/2`
    /// is a check too); `None` for anything else.
    pub fn of(field: &str) -> Option<Self> {
        /// `leaklab.KIND`: the part before the version.
        fn kind(name: &str) -> Option<&str> {
            name.split_once('/').map(|(k, _)| k)
        }
        let asked = kind(field).filter(|k| k.starts_with("leaklab."))?;
        ALL.into_iter().find(|s| kind(s.name()) == Some(asked))
    }

    /// The kind of a JSON document, by its `schema` field.
    pub fn of_document(doc: &serde_json::Value) -> Option<Self> {
        doc.get("schema")
            .and_then(|s| s.as_str())
            .and_then(Self::of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_found_by_its_own_name_and_by_another_version() {
        for s in ALL {
            assert_eq!(Schema::of(s.name()), Some(s), "{}", s.name());
            let next = s.name().replace("/1", "/2");
            assert_eq!(Schema::of(&next), Some(s), "{next}");
        }
        assert_eq!(
            Schema::of("leaklab.watch-event/1"),
            Some(Schema::WatchEvent)
        );
        assert_eq!(Schema::of("leaklab.watch/1"), Some(Schema::Watch));
        assert_eq!(Schema::of("leaklab.nothing/1"), None);
        assert_eq!(Schema::of("other.check/1"), None);
        assert_eq!(Schema::of("leaklab.check"), None);
    }

    #[test]
    fn every_printed_kind_is_in_the_documented_schema() {
        let schema = include_str!("../../../Documentation/schema/leaklab-1.schema.json");
        // A watch directory's state.json is the watch's own, read back by
        // it and by `show`: no command prints it.
        let printed = ALL.into_iter().filter(|s| *s != Schema::WatchState);
        for s in printed {
            let described = format!("\"const\": \"{}\"", s.name());
            assert!(
                schema.contains(&described),
                "{} is not in the schema",
                s.name()
            );
        }
    }
}
