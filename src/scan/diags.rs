//! The finding codes the scanner emits, as one typed enum: [`ScanFinding::new`] takes a
//! [`Code`], so no call site spells a code as a string. Each code's wire name appears once, here;
//! its one-line summary is in the crate's code table (`report::codes::CODES`), and a test keeps
//! the two in step.
//!
//! [`ScanFinding::new`]: super::finding::ScanFinding::new

macro_rules! codes {
    ($($variant:ident = $name:literal,)*) => {
        /// A scan finding code (see the module docs).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every scan code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The stable name written in reports (`PKL001`, `SCN013`, …).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }
        }
    };
}

codes! {
    Pkl001 = "PKL001",
    Pkl002 = "PKL002",
    Pkl003 = "PKL003",
    Pkl004 = "PKL004",
    Pkl005 = "PKL005",
    Pkl006 = "PKL006",
    Pkl007 = "PKL007",
    Pkl008 = "PKL008",
    Pkl009 = "PKL009",
    Pkl011 = "PKL011",
    Pkl012 = "PKL012",
    Pkl013 = "PKL013",
    Pkl014 = "PKL014",
    Pkl015 = "PKL015",
    Pkl016 = "PKL016",
    Pkl017 = "PKL017",
    Pkl018 = "PKL018",
    Pkl019 = "PKL019",
    Pkl020 = "PKL020",
    Pkl021 = "PKL021",
    Scn001 = "SCN001",
    Scn002 = "SCN002",
    Scn003 = "SCN003",
    Scn004 = "SCN004",
    Scn005 = "SCN005",
    Scn006 = "SCN006",
    Scn007 = "SCN007",
    Scn008 = "SCN008",
    Scn009 = "SCN009",
    Scn010 = "SCN010",
    Scn011 = "SCN011",
    Scn012 = "SCN012",
    Scn013 = "SCN013",
    Scn014 = "SCN014",
    Scn015 = "SCN015",
    Scn016 = "SCN016",
    Scn017 = "SCN017",
    Scn018 = "SCN018",
    Scn019 = "SCN019",
    Scn021 = "SCN021",
    Scn030 = "SCN030",
    Scn031 = "SCN031",
    Scn032 = "SCN032",
}

impl Code {
    /// Codes whose presence means "could not be read": the file is unscannable, never clean.
    pub const UNSCANNABLE: &'static [Code] = &[
        Code::Scn001,
        Code::Scn002,
        Code::Scn018,
        Code::Scn021,
        Code::Scn031,
        Code::Scn032,
        Code::Pkl021,
    ];
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The scanner's codes are exactly the PKL and SCN rows of the crate's code table.
    #[test]
    fn every_scan_code_is_registered_and_every_registered_scan_code_exists() {
        let ours: BTreeSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(ours.len(), Code::ALL.len(), "a name is used twice");
        let registered: BTreeSet<&str> = crate::report::codes::CODES
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| c.starts_with("PKL") || c.starts_with("SCN"))
            .collect();
        assert_eq!(ours, registered);
        for c in Code::ALL {
            assert_eq!(c.to_string(), c.as_str());
            assert!(c.as_str().len() == 6 && c.as_str()[3..].bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
