//! A member's permission (consent) and their authorization at a previous plan.

use crate::vocabulary;

vocabulary! {
    /// The HRex Consent policy a member chose.
    pub enum ConsentPolicy {
        /// Sensitive information left out (`#regular`).
        Regular = "regular",
        /// Everything, sensitive information included (`#sensitive`).
        Sensitive = "sensitive",
    }
}

impl ConsentPolicy {
    pub fn of(include_sensitive: bool) -> Self {
        if include_sensitive { ConsentPolicy::Sensitive } else { ConsentPolicy::Regular }
    }

    pub fn includes_sensitive(self) -> bool {
        self == ConsentPolicy::Sensitive
    }

    /// The policy URI in an HRex Consent (the IG writes them as page anchors).
    pub fn uri(self) -> &'static str {
        match self {
            ConsentPolicy::Regular => {
                "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#regular"
            }
            ConsentPolicy::Sensitive => {
                "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#sensitive"
            }
        }
    }
}

vocabulary! {
    /// How a member gave a permission.
    pub enum ConsentChannel {
        /// On this plan's website.
        Web = "web",
        /// Recorded by staff from a phone call.
        Phone = "phone",
        /// Recorded by staff from a paper form.
        Paper = "paper",
        /// With the enrollment roster.
        Enrollment = "enrollment",
    }
}

vocabulary! {
    /// A member's authorization at a previous plan.
    pub enum LinkState {
        Pending = "pending",
        Active = "active",
        /// The previous plan refused its refresh token: the member signs in there again.
        NeedsReauthorization = "needs_reauthorization",
        /// Withdrawn: its tokens are gone.
        Revoked = "revoked",
    }
}

vocabulary! {
    /// How this plan reaches a member's records at a previous plan.
    pub enum LinkAccess {
        /// The member signed in there and approved this plan's app (SMART, refresh tokens).
        Member = "member",
        /// The previous plan matched the member for this plan's system, with the member's
        /// Consent (the Payer-to-Payer API, Backend Services tokens).
        PayerToPayer = "payer_to_payer",
        /// This plan asked the previous plan for a batch of members (`$bulk-member-match`,
        /// `$davinci-data-export`): the records came in the export's files; later requests
        /// bring what changed (Backend Services tokens, like a match).
        BulkExport = "bulk_export",
    }
}

impl LinkAccess {
    /// This plan's system holds the access (Backend Services tokens, asked for again when they
    /// expire), not a member's authorization.
    pub fn is_system(self) -> bool {
        matches!(self, LinkAccess::PayerToPayer | LinkAccess::BulkExport)
    }
}

vocabulary! {
    /// How `$member-match` compares the given names asked for with the member's record (the
    /// member id, family name and birth date always must agree).
    pub enum GivenNameRule {
        /// Given names are not compared.
        Ignore = "ignore",
        /// One of them agrees, without case or accents (`josé` = `Jose`).
        Folded = "folded",
        /// One of them agrees exactly.
        Exact = "exact",
    }
}

impl Default for GivenNameRule {
    fn default() -> Self {
        GivenNameRule::Folded
    }
}

vocabulary! {
    /// What a previous plan answered when this plan asked it to match a member.
    pub enum MatchResult {
        Matched = "matched",
        /// It knows no member with those details.
        NoMatch = "no_match",
        /// Several of its members fit: it names none.
        SeveralMatches = "several_matches",
        /// It found the member but cannot honour the Consent.
        ConsentRefused = "consent_refused",
    }
}

vocabulary! {
    /// What a previous plan said about sensitive information when it granted access.
    pub enum SensitiveSharing {
        /// Its grant leaves sensitive information out (the member said so there).
        Excluded = "excluded",
        /// Its grant includes it.
        Included = "included",
    }
}

vocabulary! {
    /// A token Baton's authorization server issued.
    pub enum TokenKind {
        Access = "access",
        Refresh = "refresh",
    }
}
