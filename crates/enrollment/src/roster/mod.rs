//! Reading a roster: CSV or a FHIR Bundle of Patient + Coverage ([`bundle`]), row by row.

mod bundle;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::Date;

use crate::previous::{self, PreviousEntry, PreviousFields};

/// Rosters larger than this are refused whole (a plan splits them).
pub const MAX_ROWS: usize = 50_000;

/// How a roster is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Csv,
    FhirBundle,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::FhirBundle => "fhir-bundle",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "csv" => Some(Format::Csv),
            "fhir-bundle" => Some(Format::FhirBundle),
            _ => None,
        }
    }

    /// JSON content is a Bundle, anything else CSV.
    pub fn detect(content: &str) -> Self {
        if content.trim_start().starts_with('{') { Format::FhirBundle } else { Format::Csv }
    }
}

/// Administrative sex as FHIR `Patient.gender` has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Female,
    Male,
    Other,
    Unknown,
}

impl Gender {
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Female => "female",
            Gender::Male => "male",
            Gender::Other => "other",
            Gender::Unknown => "unknown",
        }
    }

    /// `F`/`M`/`O`/`U` or the FHIR words, any case.
    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_lowercase().as_str() {
            "f" | "female" => Some(Gender::Female),
            "m" | "male" => Some(Gender::Male),
            "o" | "other" | "x" => Some(Gender::Other),
            "u" | "unknown" => Some(Gender::Unknown),
            _ => None,
        }
    }
}

/// One member of the roster, every field checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntry {
    /// The plan's member id: 1–64 of `A-Z a-z 0-9 - . _`.
    pub member_id: String,
    pub given_name: String,
    pub family_name: String,
    pub birth_date: Date,
    pub gender: Gender,
    pub email: Option<String>,
    pub coverage_start: Date,
    /// The plan (product) the member enrolled in.
    pub plan: String,
    /// Their coverage at a previous plan, when the roster says (CSV columns, see [`crate::previous`]).
    #[serde(default)]
    pub previous: Option<PreviousEntry>,
}

impl RosterEntry {
    pub fn display_name(&self) -> String {
        format!("{} {}", self.given_name, self.family_name)
    }
}

/// One row of the roster: where it is, and either the entry or what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// CSV line number (the header is line 1), or Bundle entry number (from 1).
    pub number: usize,
    /// The member id as written, when there is one (to help staff find the row).
    pub member_id: Option<String>,
    pub entry: Option<RosterEntry>,
    pub errors: Vec<String>,
}

/// A parsed roster, before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    pub format: Format,
    pub rows: Vec<Row>,
}

impl Preview {
    pub fn valid(&self) -> impl Iterator<Item = &RosterEntry> {
        self.rows.iter().filter_map(|row| row.entry.as_ref())
    }

    pub fn error_count(&self) -> usize {
        self.rows.iter().filter(|row| row.entry.is_none()).count()
    }
}

/// Why a whole file cannot be read (a row's problems are in its [`Row`] instead).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RosterError {
    #[error("the file is empty")]
    Empty,
    #[error("the first line must name the columns; missing: {0}")]
    MissingColumns(String),
    #[error("the file is not valid CSV: {0}")]
    Csv(String),
    #[error("the file is not valid JSON: {0}")]
    Json(String),
    #[error("the JSON is not a FHIR Bundle")]
    NotABundle,
    #[error("the roster has more than {MAX_ROWS} members; split it into smaller files")]
    TooLarge,
}

/// Reads `content` written as `format`.
pub fn parse(format: Format, content: &str) -> Result<Preview, RosterError> {
    let mut rows = match format {
        Format::Csv => parse_csv(content)?,
        Format::FhirBundle => bundle::parse_bundle(content)?,
    };
    if rows.len() > MAX_ROWS {
        return Err(RosterError::TooLarge);
    }
    flag_repeated_member_ids(&mut rows);
    Ok(Preview { format, rows })
}

/// A member id twice in one file: the later rows are errors (which one is right is for staff).
fn flag_repeated_member_ids(rows: &mut [Row]) {
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    for row in rows.iter_mut() {
        let Some(id) = row.entry.as_ref().map(|e| e.member_id.clone()) else { continue };
        if let Some(first) = first_seen.get(&id) {
            row.errors.push(format!("member id {id} is already on row {first}"));
            row.entry = None;
        } else {
            first_seen.insert(id, row.number);
        }
    }
}

/// Column names accepted for each field (compared lower case, spaces and `-` as `_`).
const COLUMNS: [(&str, &[&str]); 8] = [
    ("member_id", &["member_id", "memberid", "member_number", "subscriber_id"]),
    ("given_name", &["given_name", "first_name", "given"]),
    ("family_name", &["family_name", "last_name", "family", "surname"]),
    ("birth_date", &["birth_date", "date_of_birth", "dob", "birthdate"]),
    ("sex", &["sex", "gender", "administrative_sex"]),
    ("email", &["email", "e_mail", "email_address"]),
    ("coverage_start", &["coverage_start", "coverage_start_date", "effective_date", "start_date"]),
    ("plan", &["plan", "plan_name", "product"]),
];

fn parse_csv(content: &str) -> Result<Vec<Row>, RosterError> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    if content.trim().is_empty() {
        return Err(RosterError::Empty);
    }
    let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(content.as_bytes());
    let headers = reader.headers().map_err(|e| RosterError::Csv(e.to_string()))?.clone();
    let normalise = |h: &str| h.trim().to_lowercase().replace([' ', '-'], "_");
    let mut index = HashMap::new();
    for (position, header) in headers.iter().enumerate() {
        let header = normalise(header);
        if let Some((field, _)) =
            COLUMNS.iter().chain(previous::COLUMNS.iter()).find(|(_, names)| names.contains(&header.as_str()))
        {
            index.entry(*field).or_insert(position);
        }
    }
    let missing: Vec<&str> =
        COLUMNS.iter().map(|(field, _)| *field).filter(|f| *f != "email" && !index.contains_key(f)).collect();
    if !missing.is_empty() {
        return Err(RosterError::MissingColumns(missing.join(", ")));
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let number = record.as_ref().ok().and_then(|r| r.position()).map_or(i + 2, |p| p.line() as usize);
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                rows.push(Row {
                    number,
                    member_id: None,
                    entry: None,
                    errors: vec![format!("unreadable line: {error}")],
                });
                continue;
            }
        };
        if record.iter().all(str::is_empty) {
            continue;
        }
        let field = |name: &str| index.get(name).and_then(|&i| record.get(i)).unwrap_or("").to_owned();
        let fields = Fields {
            member_id: field("member_id"),
            given_name: field("given_name"),
            family_name: field("family_name"),
            birth_date: field("birth_date"),
            sex: field("sex"),
            email: field("email"),
            coverage_start: field("coverage_start"),
            plan: field("plan"),
            previous: PreviousFields {
                payer: field("previous_payer"),
                member_id: field("previous_member_id"),
                start: field("previous_coverage_start"),
                end: field("previous_coverage_end"),
                concurrent: field("previous_coverage_concurrent"),
                opt_in: field("p2p_opt_in"),
                opt_in_date: field("p2p_opt_in_date"),
                sensitive: field("p2p_sensitive"),
            },
        };
        rows.push(fields.check(number));
        if rows.len() > MAX_ROWS {
            return Err(RosterError::TooLarge);
        }
    }
    Ok(rows)
}

/// A row's fields as written, before checking.
#[derive(Debug, Default)]
struct Fields {
    member_id: String,
    given_name: String,
    family_name: String,
    birth_date: String,
    sex: String,
    email: String,
    coverage_start: String,
    plan: String,
    previous: PreviousFields,
}

impl Fields {
    fn check(self, number: usize) -> Row {
        let mut errors = Vec::new();
        let member_id = self.member_id.trim().to_owned();
        if member_id.is_empty() {
            errors.push("member id is missing".to_owned());
        } else if !is_member_id(&member_id) {
            errors.push(format!("member id {member_id:?} may have only letters, digits, '-', '.' and '_' (up to 64)"));
        }
        let name = |value: &str, what: &str, errors: &mut Vec<String>| {
            let value = value.trim();
            if value.is_empty() {
                errors.push(format!("{what} is missing"));
            } else if value.chars().count() > 100 || value.chars().any(char::is_control) {
                errors.push(format!("{what} is not a name"));
            }
            value.to_owned()
        };
        let given_name = name(&self.given_name, "given name", &mut errors);
        let family_name = name(&self.family_name, "family name", &mut errors);
        let today = time::OffsetDateTime::now_utc().date();
        let birth_date = match parse_date(&self.birth_date, "date of birth") {
            Ok(date) if date > today => {
                errors.push(format!("date of birth {} is in the future", self.birth_date.trim()));
                None
            }
            Ok(date) => Some(date),
            Err(error) => {
                errors.push(error);
                None
            }
        };
        let coverage_start = parse_date(&self.coverage_start, "coverage start").map_err(|e| errors.push(e)).ok();
        if let (Some(birth), Some(start)) = (birth_date, coverage_start)
            && start < birth
        {
            errors.push("coverage starts before the date of birth".to_owned());
        }
        let gender = match Gender::parse(&self.sex) {
            Some(gender) => Some(gender),
            None if self.sex.trim().is_empty() => {
                errors.push("sex is missing (F, M, O or U)".to_owned());
                None
            }
            None => {
                errors.push(format!("sex {:?} is not one of F, M, O, U", self.sex.trim()));
                None
            }
        };
        let email = Some(self.email.trim().to_lowercase()).filter(|e| !e.is_empty());
        if let Some(email) = &email
            && !is_email(email)
        {
            errors.push(format!("email {email:?} is not an email address"));
        }
        let plan = self.plan.trim().to_owned();
        if plan.is_empty() {
            errors.push("plan is missing".to_owned());
        }
        let previous = self.previous.check(coverage_start, &mut errors);
        let shown_id = Some(member_id.clone()).filter(|id| !id.is_empty());
        match (birth_date, coverage_start, gender) {
            (Some(birth_date), Some(coverage_start), Some(gender)) if errors.is_empty() => Row {
                number,
                member_id: shown_id,
                entry: Some(RosterEntry {
                    member_id,
                    given_name,
                    family_name,
                    birth_date,
                    gender,
                    email,
                    coverage_start,
                    plan,
                    previous,
                }),
                errors,
            },
            _ => Row { number, member_id: shown_id, entry: None, errors },
        }
    }
}

fn parse_date(text: &str, what: &str) -> Result<Date, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{what} is missing"));
    }
    baton_vocab::day::parse(text).ok_or_else(|| format!("{what} {text:?} is not a date like 1980-04-23"))
}

pub fn is_member_id(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && text.len() <= 254
        && !text.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == ';')
        && !domain.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "member_id,given_name,family_name,birth_date,sex,email,coverage_start,plan\n\
        NP-1001,Rosa,Diaz,1980-04-23,F,rosa@example.org,2026-01-01,Gold PPO\n\
        NP-1002,Tom,Nguyen,1975-11-02,M,,2026-01-01,Silver HMO\n";

    #[test]
    fn a_good_csv_gives_one_entry_per_line() {
        let preview = parse(Format::Csv, GOOD).unwrap();
        assert_eq!(preview.rows.len(), 2);
        assert_eq!(preview.error_count(), 0);
        let rosa = preview.rows[0].entry.as_ref().unwrap();
        assert_eq!(rosa.member_id, "NP-1001");
        assert_eq!(rosa.display_name(), "Rosa Diaz");
        assert_eq!(rosa.gender, Gender::Female);
        assert_eq!(rosa.email.as_deref(), Some("rosa@example.org"));
        assert_eq!(baton_vocab::day::format(rosa.coverage_start), "2026-01-01");
        assert_eq!(preview.rows[1].number, 3);
        assert_eq!(preview.rows[1].entry.as_ref().unwrap().email, None);
    }

    #[test]
    fn every_problem_of_a_row_is_named_with_its_line() {
        let csv = "Member ID,First Name,Last Name,DOB,Gender,Email,Effective Date,Plan\n\
            NP-1,Ann,Lee,1990-02-30,Q,not-an-email,2026-01-01,\n\
            ,Bob,,1990-01-01,M,,yesterday,Gold\n\
            NP-3,Cy,Ko,1990-01-01,M,,2026-01-01,Gold\n\
            NP-3,Cy,Ko,1990-01-01,M,,2026-01-01,Gold\n";
        let preview = parse(Format::Csv, csv).unwrap();
        assert_eq!(preview.rows.len(), 4);
        let first = &preview.rows[0];
        assert_eq!(first.number, 2);
        assert!(first.entry.is_none());
        let joined = first.errors.join("; ");
        for expected in ["date of birth \"1990-02-30\"", "sex \"Q\"", "email \"not-an-email\"", "plan is missing"] {
            assert!(joined.contains(expected), "{joined}");
        }
        let second = preview.rows[1].errors.join("; ");
        assert!(second.contains("member id is missing") && second.contains("family name is missing"), "{second}");
        assert!(second.contains("coverage start \"yesterday\""), "{second}");
        assert!(preview.rows[2].entry.is_some());
        assert_eq!(preview.rows[3].errors, vec!["member id NP-3 is already on row 4".to_owned()]);
        assert_eq!(preview.error_count(), 3);
    }

    #[test]
    fn a_file_without_the_columns_is_refused_whole() {
        assert_eq!(
            parse(Format::Csv, "id,name\n1,x\n"),
            Err(RosterError::MissingColumns(
                "member_id, given_name, family_name, birth_date, sex, coverage_start, plan".into()
            ))
        );
        assert_eq!(parse(Format::Csv, "  \n"), Err(RosterError::Empty));
        assert!(matches!(parse(Format::FhirBundle, "{not json"), Err(RosterError::Json(_))));
        assert_eq!(parse(Format::FhirBundle, r#"{"resourceType":"Patient"}"#), Err(RosterError::NotABundle));
    }
}
