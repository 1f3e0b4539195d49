//! `datetime` values as the database keeps them: milliseconds since the Unix epoch.

use cedar_policy::{Context, Entities, EntityUid, EvalResult, Expression, Request};

/// `ms` since the epoch as Cedar writes a datetime: `2026-11-24T10:00:00.000Z`.
pub fn rfc3339_millis(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// The date of `days` since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A Cedar datetime literal (any form Cedar reads: a date, a time in UTC or with an offset,
/// with or without milliseconds) in milliseconds since the epoch, as Cedar itself computes
/// it; `None` when Cedar does not read it.
pub fn datetime_millis(arg: &str) -> Option<i64> {
    let literal = serde_json::to_string(arg).ok()?;
    let expression: Expression =
        format!("datetime({literal}).durationSince(datetime(\"1970-01-01\")).toMilliseconds()")
            .parse()
            .ok()?;
    let nobody: EntityUid = r#"Gatehouse::"datetime""#.parse().ok()?;
    let request = Request::new(
        nobody.clone(),
        nobody.clone(),
        nobody,
        Context::empty(),
        None,
    )
    .ok()?;
    match cedar_policy::eval_expression(&request, &Entities::empty(), &expression) {
        Ok(EvalResult::Long(ms)) => Some(ms),
        _ => None,
    }
}
