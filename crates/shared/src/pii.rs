//! PII auto-tagging: which columns of a dataset hold personal, health or money data.
//!
//! Two signals per column: its name (tokens such as `email`, `ssn`, `pay_rate`) and
//! a sample of its values (patterns for emails, US phone numbers, SSNs, street
//! addresses, currency amounts, and a medical vocabulary). A value pattern must
//! match most of the non-empty sample, so a column of ZIP codes, order numbers or
//! dates does not become "phone" because one value happens to look like one.
//!
//! Sensitivity ladder (most to least sensitive): PHI > PII > Financial > Internal > Public.
//! A dataset's sensitivity is the most sensitive of its columns, and `Internal` when
//! nothing was detected (we do not call data public without a person saying so).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::DataType;
use regex::Regex;
use serde::Serialize;

/// Share of non-empty sampled values that must match a value pattern.
const VALUE_MATCH_SHARE: f64 = 0.6;
/// Values inspected per column.
pub const SAMPLE_ROWS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Sensitivity {
    Public,
    Internal,
    Financial,
    #[serde(rename = "PII")]
    Pii,
    #[serde(rename = "PHI")]
    Phi,
}

impl Sensitivity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "Public",
            Self::Internal => "Internal",
            Self::Financial => "Financial",
            Self::Pii => "PII",
            Self::Phi => "PHI",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    Email,
    Phone,
    Ssn,
    PersonName,
    BirthDate,
    StreetAddress,
    Salary,
    Medical,
}

impl PiiKind {
    pub fn sensitivity(self) -> Sensitivity {
        match self {
            Self::Medical => Sensitivity::Phi,
            Self::Salary => Sensitivity::Financial,
            _ => Sensitivity::Pii,
        }
    }
}

/// Why a column was tagged.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnTag {
    pub column: String,
    pub kind: PiiKind,
    pub sensitivity: Sensitivity,
    /// "name", "values" or "name+values"
    pub evidence: &'static str,
    /// Share of sampled values matching the pattern (None when tagged by name only).
    pub value_share: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PiiReport {
    pub sensitivity: Sensitivity,
    pub columns: Vec<ColumnTag>,
}

impl PiiReport {
    /// column -> sensitivity label, as stored in the catalog manifest.
    pub fn column_labels(&self) -> BTreeMap<String, String> {
        self.columns.iter().map(|t| (t.column.clone(), t.sensitivity.as_str().to_string())).collect()
    }
}

/// Tag every column of `sample` (a few hundred rows are enough).
pub fn scan(sample: &RecordBatch) -> PiiReport {
    let schema = sample.schema();
    let columns: Vec<ColumnTag> = schema
        .fields()
        .iter()
        .zip(sample.columns())
        .filter_map(|(field, values)| classify(field.name(), values))
        .collect();
    let sensitivity = columns.iter().map(|t| t.sensitivity).max().unwrap_or(Sensitivity::Internal);
    PiiReport { sensitivity, columns }
}

/// The tag for one column, if any.
pub fn classify(name: &str, values: &ArrayRef) -> Option<ColumnTag> {
    let by_name = kind_from_name(name);
    let by_values = kind_from_values(values);
    let (kind, evidence, share) = match (by_name, by_values) {
        (Some(n), Some((v, share))) if n == v => (n, "name+values", Some(share)),
        // Values are the stronger signal when they disagree with the name.
        (_, Some((v, share))) => (v, "values", Some(share)),
        (Some(n), None) if name_is_enough(n, values) => (n, "name", None),
        _ => return None,
    };
    Some(ColumnTag { column: name.to_string(), kind, sensitivity: kind.sensitivity(), evidence, value_share: share })
}

/// A name alone tags a column unless its values clearly contradict it (e.g. a
/// `phone_verified` boolean): identifiers and amounts must hold text or numbers.
fn name_is_enough(kind: PiiKind, values: &ArrayRef) -> bool {
    let dt = values.data_type();
    match kind {
        PiiKind::Salary => dt.is_numeric() || is_text(dt),
        PiiKind::BirthDate => matches!(dt, DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)) || is_text(dt),
        _ => is_text(dt),
    }
}

fn is_text(dt: &DataType) -> bool {
    matches!(dt, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Lower-case word tokens of a column name: `workerEmail`, `worker_email` and
/// `Worker Email` all give ["worker", "email"].
fn name_tokens(name: &str) -> Vec<String> {
    let mut spaced = String::new();
    let mut prev_lower = false;
    for ch in name.chars() {
        if ch.is_uppercase() && prev_lower {
            spaced.push(' ');
        }
        prev_lower = ch.is_lowercase() || ch.is_ascii_digit();
        spaced.push(if ch.is_alphanumeric() { ch.to_ascii_lowercase() } else { ' ' });
    }
    spaced.split_whitespace().map(str::to_string).collect()
}

fn kind_from_name(name: &str) -> Option<PiiKind> {
    let tokens = name_tokens(name);
    let has = |words: &[&str]| tokens.iter().any(|t| words.contains(&t.as_str()));
    let joined = tokens.join("_");
    if has(&["email", "mail", "e-mail"]) || joined.contains("e_mail") {
        return Some(PiiKind::Email);
    }
    if has(&["phone", "mobile", "cell", "telephone", "tel", "fax"]) {
        return Some(PiiKind::Phone);
    }
    if has(&["ssn", "sin"]) || joined.contains("social_security") {
        return Some(PiiKind::Ssn);
    }
    if has(&["dob", "birthdate", "birthday"]) || joined.contains("birth_date") || joined.contains("date_of_birth") {
        return Some(PiiKind::BirthDate);
    }
    if has(&["diagnosis", "medical", "medication", "medications", "allergy", "allergies", "icd", "health", "disability"]) {
        return Some(PiiKind::Medical);
    }
    if has(&["salary", "wage", "wages", "compensation", "income", "pay", "payrate", "bill", "billrate"]) {
        return Some(PiiKind::Salary);
    }
    if has(&["address", "street", "addr"]) && !has(&["ip", "mac"]) {
        return Some(PiiKind::StreetAddress);
    }
    let person = ["first", "last", "full", "given", "family", "middle"];
    if (has(&["name"]) && (tokens.len() == 1 || has(&person))) || has(&["firstname", "lastname", "fullname", "surname"]) {
        return Some(PiiKind::PersonName);
    }
    None
}

struct Patterns {
    email: Regex,
    phone: Regex,
    ssn: Regex,
    street: Regex,
    money: Regex,
    medical: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| Patterns {
        email: Regex::new(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$").expect("regex"),
        // US numbers as people write them; a bare 10-digit run only with a leading +1.
        phone: Regex::new(r"^(\+?1[ .\-]?)?(\(\d{3}\)\s?|\d{3}[ .\-])\d{3}[ .\-]\d{4}(\s*(x|ext\.?)\s*\d{1,5})?$|^\+1\d{10}$").expect("regex"),
        // Area 000, 666 and 900-999 are never issued; group 00 and serial 0000 neither.
        ssn: Regex::new(r"^(\d{3})-(\d{2})-(\d{4})$").expect("regex"),
        street: Regex::new(r"(?i)^\d{1,6}[A-Z]?\s+([NSEW]\.?\s+)?[A-Za-z0-9'.\- ]+\s(st|street|ave|avenue|rd|road|blvd|boulevard|dr|drive|ln|lane|ct|court|way|pl|place|pkwy|parkway|hwy|highway|ter|terrace|cir|circle)\.?(\s*(apt|unit|suite|ste|#)\s*[A-Za-z0-9\-]+)?\b").expect("regex"),
        money: Regex::new(r"^\$\s?\d{1,3}(,\d{3})*(\.\d{2})?(\s?(/|per)\s?(hr|hour|yr|year))?$").expect("regex"),
        medical: Regex::new(r"(?i)\b(diabetes|diabetic|asthma|hypertension|hiv|aids|cancer|chemotherapy|depression|anxiety disorder|pregnan\w*|epilepsy|seizure|covid|hepatitis|tuberculosis|arthritis|insulin|prescri\w*|diagnos\w*|surgery|injur\w*|disabilit\w*|mental health|ptsd|adhd|allerg\w*)\b").expect("regex"),
    })
}

/// Text values of a column sample (non-text columns are cast; empty strings dropped).
fn text_sample(values: &ArrayRef) -> Vec<String> {
    let take = values.len().min(SAMPLE_ROWS);
    let sliced = values.slice(0, take);
    let as_text = if is_text(sliced.data_type()) {
        cast_with_options(&sliced, &DataType::Utf8, &CastOptions::default())
    } else {
        return Vec::new();
    };
    let Ok(text) = as_text else { return Vec::new() };
    let strings = text.as_any().downcast_ref::<arrow::array::StringArray>().expect("cast to Utf8");
    strings.iter().flatten().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn valid_ssn(caps: &regex::Captures<'_>) -> bool {
    let area: u32 = caps[1].parse().unwrap_or(0);
    area != 0 && area != 666 && area < 900 && &caps[2] != "00" && &caps[3] != "0000"
}

/// The kind whose pattern most of the sampled values match, with that share.
fn kind_from_values(values: &ArrayRef) -> Option<(PiiKind, f64)> {
    let sample = text_sample(values);
    if sample.len() < 3 {
        return None;
    }
    let p = patterns();
    let share = |test: &dyn Fn(&str) -> bool| sample.iter().filter(|v| test(v)).count() as f64 / sample.len() as f64;
    let candidates: [(PiiKind, f64); 5] = [
        (PiiKind::Email, share(&|v| p.email.is_match(v))),
        (PiiKind::Ssn, share(&|v| p.ssn.captures(v).is_some_and(|c| valid_ssn(&c)))),
        (PiiKind::Phone, share(&|v| p.phone.is_match(v))),
        (PiiKind::StreetAddress, share(&|v| p.street.is_match(v))),
        (PiiKind::Salary, share(&|v| p.money.is_match(v))),
    ];
    if let Some(best) = candidates.into_iter().filter(|(_, s)| *s >= VALUE_MATCH_SHARE).max_by(|a, b| a.1.total_cmp(&b.1)) {
        return Some(best);
    }
    // Medical terms appear inside free text; a lower share already means health data.
    let medical = share(&|v| p.medical.is_match(v));
    (medical >= 0.3).then_some((PiiKind::Medical, medical))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BooleanArray, Float64Array, StringArray};
    use std::sync::Arc;

    fn text(values: &[&str]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    fn kind(name: &str, values: ArrayRef) -> Option<PiiKind> {
        classify(name, &values).map(|t| t.kind)
    }

    #[test]
    fn values_identify_emails_phones_ssns_addresses_and_money() {
        assert_eq!(kind("contact", text(&["a@b.com", "x.y@example.org", "q@r.io"])), Some(PiiKind::Email));
        assert_eq!(kind("c1", text(&["(312) 555-0142", "312-555-0199", "+1 773 555 0100"])), Some(PiiKind::Phone));
        assert_eq!(kind("c2", text(&["123-45-6789", "234-56-7890", "345-67-8901"])), Some(PiiKind::Ssn));
        assert_eq!(kind("c3", text(&["1200 W Madison St", "55 Elm Street Apt 4", "9 Oak Ave"])), Some(PiiKind::StreetAddress));
        assert_eq!(kind("c4", text(&["$85,000", "$72,500.00", "$31.50/hr"])), Some(PiiKind::Salary));
        assert_eq!(kind("notes", text(&["history of asthma", "type 2 diabetes", "no restrictions", "pregnant, light duty"])), Some(PiiKind::Medical));
    }

    #[test]
    fn zip_codes_order_numbers_dates_and_product_codes_are_not_pii() {
        assert_eq!(kind("zip", text(&["60614", "43604", "10001", "60614-1234"])), None);
        assert_eq!(kind("order_no", text(&["ORD-2024-00017", "ORD-2024-00018", "ORD-2024-00019"])), None);
        assert_eq!(kind("start", text(&["2024-01-15", "2023-12-01", "2025-06-02"])), None);
        assert_eq!(kind("sku", text(&["AB-12-3456", "CD-34-5678", "EF-56-7890"])), None);
        assert_eq!(kind("code", text(&["000-12-3456", "666-12-3456", "912-34-5678"])), None, "never-issued SSN ranges");
        assert_eq!(kind("phone_verified", Arc::new(BooleanArray::from(vec![true, false, true]))), None);
    }

    #[test]
    fn names_tag_columns_whose_values_say_nothing() {
        assert_eq!(kind("pay_rate", Arc::new(Float64Array::from(vec![21.5, 30.0, 18.25]))), Some(PiiKind::Salary));
        assert_eq!(kind("workerEmail", text(&["", "", ""])), Some(PiiKind::Email));
        assert_eq!(kind("last_name", text(&["Green", "Lewis", "Ward"])), Some(PiiKind::PersonName));
        assert_eq!(kind("name", text(&["Carmen Green", "Dave Ward", "Rachel Lewis"])), Some(PiiKind::PersonName));
        assert_eq!(kind("role_name", text(&["Welder", "Electrician", "Painter"])), None);
        assert_eq!(kind("city", text(&["Toledo", "Chicago", "Joliet"])), None);
    }

    #[test]
    fn dataset_sensitivity_is_the_most_sensitive_column() {
        let batch = RecordBatch::try_from_iter(vec![
            ("city", text(&["Toledo", "Chicago", "Joliet"])),
            ("email", text(&["a@b.com", "c@d.com", "e@f.com"])),
            ("notes", text(&["asthma", "diabetes", "allergy to latex"])),
        ])
        .unwrap();
        let report = scan(&batch);
        assert_eq!(report.sensitivity, Sensitivity::Phi);
        assert_eq!(report.column_labels().get("email").map(String::as_str), Some("PII"));
        assert!(!report.column_labels().contains_key("city"));
    }
}
