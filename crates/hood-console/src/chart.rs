//! Charts as SVG, drawn on the server: no chart library, no script, and
//! readable in light and dark (colours come from the stylesheet through
//! class names; the SVG sets none). Every bar carries a `<title>` with its
//! exact numbers, and the chart an accessible label.

use std::fmt::Write;

/// `2026-12-03` (or `2026-12-03 14:00` with the hour) in UTC.
pub(crate) fn utc_label(ms: i64, with_hour: bool) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return ms.to_string();
    };
    if with_hour {
        format!(
            "{:04}-{:02}-{:02} {:02}:00",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour()
        )
    } else {
        format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
    }
}

/// Escapes text for SVG content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One column of a stacked bar chart: its label and one value per series.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub label: String,
    pub values: Vec<i64>,
}

/// One column per `step_ms` of `[from_ms, to_ms)`, so an empty bucket is
/// drawn as an empty column and a bar's place says when it was. `values`:
/// the buckets that have data, by start. At most `MAX_COLUMNS`.
pub(crate) fn timeline_columns(
    from_ms: i64,
    to_ms: i64,
    step_ms: i64,
    series: usize,
    values: &std::collections::BTreeMap<i64, Vec<i64>>,
) -> Vec<Column> {
    const MAX_COLUMNS: i64 = 1000;
    if to_ms <= from_ms {
        return Vec::new();
    }
    let step = step_ms.max(1);
    let first = from_ms.div_euclid(step) * step;
    let count = ((to_ms - first + step - 1) / step).clamp(0, MAX_COLUMNS);
    (0..count)
        .map(|i| {
            let start = first + i * step;
            Column {
                label: utc_label(start, step < 86_400_000),
                values: values
                    .get(&start)
                    .cloned()
                    .unwrap_or_else(|| vec![0; series]),
            }
        })
        .collect()
}

/// A stacked bar chart: `series` names the stacks (class `s0`, `s1`, …),
/// `columns` in order. `unit` follows numbers in the titles.
pub(crate) fn stacked_bars(
    label: &str,
    series: &[String],
    columns: &[Column],
    unit: &str,
    test_id: &str,
) -> String {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 180.0;
    const AXIS: f64 = 18.0;
    let max = columns
        .iter()
        .map(|c| c.values.iter().map(|v| (*v).max(0)).sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let n = columns.len().max(1) as f64;
    let slot = WIDTH / n;
    let bar = (slot * 0.8).max(1.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {total}" role="img" aria-label="{label}" data-testid="{test_id}" preserveAspectRatio="none">"#,
        total = HEIGHT + AXIS,
        label = escape(label),
        test_id = escape(test_id),
    );
    let _ = write!(
        svg,
        r#"<line class="axis" x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}"/>"#
    );
    for (i, column) in columns.iter().enumerate() {
        let x = i as f64 * slot + (slot - bar) / 2.0;
        let mut y = HEIGHT;
        let total: i64 = column.values.iter().map(|v| (*v).max(0)).sum();
        let mut title = format!("{}: {total} {unit}", column.label);
        for (s, v) in column.values.iter().enumerate() {
            if *v > 0 {
                let _ = write!(
                    title,
                    ", {} {v}",
                    series.get(s).map(String::as_str).unwrap_or("")
                );
            }
        }
        let _ = write!(
            svg,
            r#"<g class="col" data-total="{total}"><title>{}</title>"#,
            escape(&title)
        );
        for (s, v) in column.values.iter().enumerate() {
            if *v <= 0 {
                continue;
            }
            let h = (*v as f64 / max as f64) * (HEIGHT - 4.0);
            y -= h;
            let _ = write!(
                svg,
                r#"<rect class="s{}" x="{x:.2}" y="{y:.2}" width="{bar:.2}" height="{h:.2}"/>"#,
                s % 8
            );
        }
        // A transparent full-height target, so thin bars still show their
        // title on hover.
        let _ = write!(
            svg,
            r#"<rect class="hit" x="{x:.2}" y="0" width="{bar:.2}" height="{HEIGHT}"/></g>"#
        );
    }
    if let (Some(first), Some(last)) = (columns.first(), columns.last()) {
        let _ = write!(
            svg,
            r#"<text class="tick" x="0" y="{y}">{}</text><text class="tick end" x="{WIDTH}" y="{y}" text-anchor="end">{}</text>"#,
            escape(&first.label),
            escape(&last.label),
            y = HEIGHT + AXIS - 4.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One day of a status strip: its label and the share of time up (`None`:
/// no data, e.g. before the node existed).
#[derive(Debug, Clone)]
pub(crate) struct Day {
    pub label: String,
    pub ratio: Option<f64>,
}

/// The class of a day by its uptime: full, partial outage, major outage.
pub(crate) fn day_class(ratio: Option<f64>) -> &'static str {
    match ratio {
        None => "none",
        Some(r) if r >= 0.999 => "up",
        Some(r) if r >= 0.95 => "partial",
        Some(_) => "down",
    }
}

/// Ninety thin bars, one per day, coloured by uptime (Gatus' and
/// Statuspage's strip).
pub(crate) fn uptime_strip(label: &str, days: &[Day]) -> String {
    let slot = 8.0;
    let width = slot * days.len().max(1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="strip" viewBox="0 0 {width} 34" role="img" aria-label="{}" preserveAspectRatio="none">"#,
        escape(label)
    );
    for (i, day) in days.iter().enumerate() {
        let title = match day.ratio {
            Some(r) => format!("{}: {:.3} % up", day.label, r * 100.0),
            None => format!("{}: no data", day.label),
        };
        let _ = write!(
            svg,
            r#"<rect class="day {}" x="{:.1}" y="0" width="6" height="34" rx="1.5"><title>{}</title></rect>"#,
            day_class(day.ratio),
            i as f64 * slot,
            escape(&title)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A two-part badge (`label | message`), coloured by `tone` (`up`,
/// `partial`, `down`, `none`).
pub(crate) fn badge(label: &str, message: &str, tone: &str) -> String {
    // Verdana 11px averages about 6.5 px per character.
    let w = |t: &str| 10.0 + 6.5 * t.chars().count() as f64;
    let (lw, mw) = (w(label), w(message));
    let total = lw + mw;
    let fill = match tone {
        "up" => "#2da44e",
        "partial" => "#bf8700",
        "down" => "#cf222e",
        _ => "#6e7781",
    };
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total:.0}" height="20" role="img" aria-label="{label}: {message}"><title>{label}: {message}</title><rect width="{lw:.0}" height="20" fill="#555"/><rect x="{lw:.0}" width="{mw:.0}" height="20" fill="{fill}"/><g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11"><text x="{lx:.1}" y="14">{label}</text><text x="{mx:.1}" y="14">{message}</text></g></svg>"##,
        label = escape(label),
        message = escape(message),
        lx = 5.0,
        mx = lw + 5.0,
    )
}

/// A step line of a balance over time (`points`: instant in ms, value),
/// drawn as the balance stays flat between changes. The value is in the
/// units `unit` names.
pub(crate) fn balance_line(
    label: &str,
    points: &[(i64, i64)],
    unit: &str,
    test_id: &str,
) -> String {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 160.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}" data-testid="{test_id}" data-points="{n}" preserveAspectRatio="none">"#,
        label = escape(label),
        test_id = escape(test_id),
        n = points.len(),
    );
    let _ = write!(
        svg,
        r#"<line class="axis" x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}"/>"#
    );
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let span = (last.0 - first.0).max(1) as f64;
        let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
        let x = |t: i64| (t - first.0) as f64 / span * WIDTH;
        let y = |v: i64| HEIGHT - (v.max(0) as f64 / max) * (HEIGHT - 8.0);
        let mut path = String::new();
        let mut previous: Option<i64> = None;
        for (t, v) in points {
            match previous {
                None => {
                    let _ = write!(path, "M{:.1},{:.1}", x(*t), y(*v));
                }
                Some(p) => {
                    let _ = write!(
                        path,
                        " L{:.1},{:.1} L{:.1},{:.1}",
                        x(*t),
                        y(p),
                        x(*t),
                        y(*v)
                    );
                }
            }
            previous = Some(*v);
        }
        let _ = write!(
            svg,
            r#"<path class="s0 line" d="{path}"><title>{} {unit} now</title></path>"#,
            last.1
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One series of a [`lines`] chart: its name (legend and tooltip) and its
/// `(unix ms, value)` points, oldest first; `None` is a gap.
pub(crate) struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(i64, Option<f64>)>,
}

/// Straight lines through each series' points on one time axis, scaled to
/// `max` (or to the largest value when `None`), the *n*th series in
/// colour `s{n}`. Each line carries a `<title>` with its latest value, and
/// the chart `data-points` (points of the first series) for tests.
pub(crate) fn lines(
    label: &str,
    series: &[Series<'_>],
    max: Option<f64>,
    format: fn(f64) -> String,
    test_id: &str,
) -> String {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 160.0;
    let mut svg = String::new();
    let first_len = series.first().map_or(0, |s| s.points.len());
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}" data-testid="{test_id}" data-points="{first_len}" preserveAspectRatio="none">"#,
        label = escape(label),
        test_id = escape(test_id),
    );
    let _ = write!(
        svg,
        r#"<line class="axis" x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}"/>"#
    );
    let times = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (from, to) = times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    if from <= to {
        let span = (to - from).max(1) as f64;
        let top = max
            .unwrap_or_else(|| {
                series
                    .iter()
                    .flat_map(|s| s.points.iter().filter_map(|p| p.1))
                    .fold(0.0, f64::max)
            })
            .max(f64::MIN_POSITIVE);
        let x = |t: i64| (t - from) as f64 / span * WIDTH;
        let y = |v: f64| HEIGHT - (v.clamp(0.0, top) / top) * (HEIGHT - 8.0);
        for (n, s) in series.iter().enumerate() {
            let mut path = String::new();
            let mut pen_down = false;
            for (t, v) in &s.points {
                match v {
                    Some(v) => {
                        let _ = write!(
                            path,
                            "{}{:.1},{:.1} ",
                            if pen_down { "L" } else { "M" },
                            x(*t),
                            y(*v)
                        );
                        pen_down = true;
                    }
                    None => pen_down = false,
                }
            }
            let latest = s.points.iter().rev().find_map(|p| p.1);
            let _ = write!(
                svg,
                r#"<path class="s{n} line" d="{d}"><title>{name}: {now}</title></path>"#,
                d = path.trim_end(),
                name = escape(s.name),
                now = latest.map_or_else(|| "—".to_owned(), format),
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_scale_to_their_maximum_and_break_at_gaps() {
        let svg = lines(
            "CPU <busy>",
            &[
                Series {
                    name: "busy",
                    points: vec![
                        (0, Some(0.0)),
                        (10, None),
                        (20, Some(50.0)),
                        (30, Some(100.0)),
                    ],
                },
                Series {
                    name: "other",
                    points: vec![(0, Some(200.0))],
                },
            ],
            Some(100.0),
            |v| format!("{v:.1} %"),
            "cpu",
        );
        assert!(svg.contains(r#"aria-label="CPU &lt;busy&gt;""#), "{svg}");
        assert!(svg.contains(r#"data-points="4""#), "{svg}");
        // A gap lifts the pen; 50 of 100 is half way up (160 - 76).
        assert!(
            svg.contains(r#"d="M0.0,160.0 M480.0,84.0 L720.0,8.0""#),
            "{svg}"
        );
        assert!(svg.contains("<title>busy: 100.0 %</title>"), "{svg}");
        // Over the maximum: drawn at the top, its real value in the title.
        assert!(svg.contains(r#"class="s1 line" d="M0.0,8.0""#), "{svg}");
        assert!(svg.contains("<title>other: 200.0 %</title>"), "{svg}");
        let empty = lines("none", &[], None, |v| v.to_string(), "x");
        assert!(empty.contains(r#"data-points="0""#) && !empty.contains("<path"));
    }

    #[test]
    fn bars_carry_their_numbers_and_escape_labels() {
        let svg = stacked_bars(
            "calls <by> chain",
            &["eth".into(), "base".into()],
            &[
                Column {
                    label: "10:00".into(),
                    values: vec![3, 1],
                },
                Column {
                    label: "11:00".into(),
                    values: vec![0, 0],
                },
            ],
            "calls",
            "usage",
        );
        assert!(svg.contains(r#"aria-label="calls &lt;by&gt; chain""#));
        assert!(svg.contains(r#"data-total="4""#));
        assert!(svg.contains("10:00: 4 calls, eth 3, base 1"));
        assert!(svg.contains(r#"data-total="0""#));
        assert_eq!(svg.matches(r#"class="s0""#).count(), 1);
        assert!(!svg.contains("<by>"));
    }

    #[test]
    fn timelines_have_a_column_per_step() {
        let hour = 3_600_000;
        let mut values = std::collections::BTreeMap::new();
        values.insert(2 * hour, vec![5]);
        let cols = timeline_columns(hour + 1, 4 * hour, hour, 1, &values);
        assert_eq!(cols.len(), 3, "hours 1, 2 and 3");
        assert_eq!(cols[0].values, vec![0]);
        assert_eq!(cols[1].values, vec![5]);
        assert_eq!(cols[1].label, "1970-01-01 02:00");
        let day = 24 * hour;
        assert_eq!(
            timeline_columns(0, 3 * day, day, 2, &values)[0].label,
            "1970-01-01"
        );
        assert!(timeline_columns(5, 5, hour, 1, &values).is_empty());
    }

    #[test]
    fn days_are_classed_by_uptime() {
        assert_eq!(day_class(None), "none");
        assert_eq!(day_class(Some(1.0)), "up");
        assert_eq!(day_class(Some(0.97)), "partial");
        assert_eq!(day_class(Some(0.5)), "down");
        let svg = uptime_strip(
            "x",
            &[
                Day {
                    label: "d1".into(),
                    ratio: Some(0.5),
                },
                Day {
                    label: "d2".into(),
                    ratio: None,
                },
            ],
        );
        assert!(svg.contains("d1: 50.000 % up"));
        assert!(svg.contains("d2: no data"));
    }

    #[test]
    fn badge_escapes() {
        let svg = badge("a&b", "<down>", "down");
        assert!(svg.contains("a&amp;b: &lt;down&gt;"));
        assert!(svg.contains("#cf222e"));
    }
}
