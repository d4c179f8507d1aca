//! `chaosctl run --html FILE`: the report as one self-contained page (no script, no
//! fetch): hypothesis, verdict, a timeline chart in inline SVG, what was injected where.

use std::fmt::Write as _;

use serde_json::Value;

/// Width and height of the chart, and its margins.
const W: f64 = 760.0;
const H: f64 = 240.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 48.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 32.0;
/// The width of one timeline point, in seconds (the run's `SLICE`).
const SLICE: f64 = 0.25;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Seconds in a `Dur` string as the report serializes it (`1s 250ms`, `800ms`).
fn seconds(v: &Value) -> Option<f64> {
    humantime::parse_duration(v.as_str()?)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// The page, from the JSON report.
pub(crate) fn page(r: &Value) -> String {
    let verdict = r["verdict"].as_str().unwrap_or("error");
    let colour = match verdict {
        "held" => "#1a7f37",
        "refuted" => "#9a6700",
        "aborted" => "#cf222e",
        _ => "#6e7781",
    };
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title}: {verdict}</title>\
         <style>body{{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:820px;color:#1f2328}}\
         h1{{font-size:1.4em;margin-bottom:.2em}} .verdict{{display:inline-block;padding:.15em .6em;border-radius:4px;\
         color:#fff;background:{colour};font-weight:600;text-transform:uppercase}}\
         table{{border-collapse:collapse;margin:1em 0}} td,th{{border-bottom:1px solid #d0d7de;padding:.3em .7em;text-align:left}}\
         .no{{color:#cf222e;font-weight:600}} svg text{{font-size:11px;fill:#57606a}}</style></head><body>\n\
         <h1>{title}</h1>\n<p><em>{hypothesis}</em></p>\n\
         <p><span class=\"verdict\" id=\"verdict\">{verdict}</span> {reason}</p>\n\
         <p>scenario <code>{scenario}</code>{owner}</p>\n",
        title = esc(r["title"].as_str().unwrap_or("")),
        hypothesis = esc(r["hypothesis"].as_str().unwrap_or("")),
        reason = esc(r["reason"].as_str().unwrap_or("")),
        scenario = esc(r["scenario"].as_str().unwrap_or("")),
        owner = r["owner"]
            .as_str()
            .map(|o| format!(", owner {}", esc(o)))
            .unwrap_or_default(),
    );
    h.push_str(&chart(r));
    h.push_str(&query_chart(r));
    let warnings: Vec<&str> = r["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !warnings.is_empty() {
        h.push_str("<h2>Warnings</h2>\n<ul id=\"warnings\">\n");
        for w in warnings {
            let _ = writeln!(h, "<li>{}</li>", esc(w));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("<h2>Phases</h2>\n<table><tr><th>phase</th><th>probe</th><th>requests</th><th>errors</th><th>error rate</th><th>p99</th><th>within tolerance</th></tr>\n");
    for p in r["phases"].as_array().into_iter().flatten() {
        let ok = p["within_tolerance"] == true;
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}%</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            esc(p["phase"].as_str().unwrap_or("")),
            esc(p["probe"].as_str().unwrap_or("")),
            p["requests"],
            p["errors"],
            p["error_rate"].as_f64().unwrap_or(0.0) * 100.0,
            esc(p["p99"].as_str().unwrap_or("-")),
            if ok { "yes" } else { "no" },
            if ok { "yes" } else { "no" },
        );
    }
    h.push_str("</table>\n");
    let queries: Vec<&Value> = r["queries"].as_array().into_iter().flatten().collect();
    if !queries.is_empty() {
        h.push_str("<h2>Queries</h2>\n<table><tr><th>phase</th><th>query</th><th>evaluations</th><th>no data</th><th>min</th><th>max</th><th>last</th><th>tolerance</th><th>within tolerance</th></tr>\n");
        let num = |v: &Value| v.as_f64().map_or("-".into(), |v| format!("{v:.4}"));
        for q in queries {
            let ok = q["within_tolerance"] == true;
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                esc(q["phase"].as_str().unwrap_or("")),
                esc(q["query"].as_str().unwrap_or("")),
                q["evaluations"],
                q["unjudged"],
                num(&q["min"]),
                num(&q["max"]),
                num(&q["last"]),
                esc(q["tolerance"].as_str().unwrap_or("")),
                if ok { "yes" } else { "no" },
                if ok { "yes" } else { "no" },
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Injected</h2>\n<table><tr><th>rule</th><th>admin</th><th>state</th><th>injected</th><th>experiment req/err</th><th>control req/err</th><th>guard</th></tr>\n");
    for i in r["injected"].as_array().into_iter().flatten() {
        let s = &i["snapshot"];
        let c = |k: &str| {
            format!(
                "{}/{}",
                s["cohorts"][k]["total_requests"], s["cohorts"][k]["total_errors"]
            )
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(i["rule"].as_str().unwrap_or("")),
            esc(i["admin"].as_str().unwrap_or("")),
            esc(s["state"].as_str().unwrap_or("-")),
            s["counters"]["injected"],
            c("experiment"),
            c("control"),
            esc(s["guard"].as_str().unwrap_or("-")),
        );
    }
    h.push_str("</table>\n");
    if r["rolled_back"] != true {
        h.push_str(
            "<p class=\"no\">ROLLBACK FAILED: the experiment's rules are still in force.</p>\n",
        );
    }
    h.push_str("</body></html>\n");
    h
}

/// Each query's value at each evaluation, one chart per query: the phases shaded, the
/// values out of tolerance marked in red, the abort marked.
fn query_chart(r: &Value) -> String {
    let points: Vec<&Value> = r["query_timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if points.is_empty() {
        return String::new();
    }
    let last = points
        .iter()
        .filter_map(|p| seconds(&p["at"]))
        .chain(
            r["phase_marks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| seconds(&m["at"])),
        )
        .fold(0.0_f64, f64::max)
        + 1.0;
    let x = |s: f64| LEFT + (W - LEFT - RIGHT) * s / last;
    let mut names: Vec<&str> = points.iter().filter_map(|p| p["query"].as_str()).collect();
    names.dedup();
    let mut s = String::from("<h2>Queries over time</h2>\n");
    for name in names {
        let mine: Vec<&&Value> = points.iter().filter(|p| p["query"] == name).collect();
        // The tolerance's bounds, drawn as dashed lines: `below`, `above`, `between`.
        let bound = &r["queries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|q| q["query"] == name)
            .map_or(Value::Null, |q| q["bound"].clone());
        let limits: Vec<f64> = [&bound["below"], &bound["above"]]
            .into_iter()
            .filter_map(Value::as_f64)
            .chain(
                bound["between"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_f64),
            )
            .collect();
        let values: Vec<f64> = mine.iter().filter_map(|p| p["value"].as_f64()).collect();
        let hi = values
            .iter()
            .chain(&limits)
            .copied()
            .fold(0.0_f64, f64::max)
            .max(1e-9);
        let lo = values
            .iter()
            .chain(&limits)
            .copied()
            .fold(0.0_f64, f64::min);
        let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - (v - lo) / (hi - lo));
        let _ = writeln!(
            s,
            "<svg class=\"query\" data-query=\"{q}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\
             <text x=\"{LEFT}\" y=\"{t}\">{q}</text>\
             <line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#8c959f\"/>\
             <text x=\"4\" y=\"{t}\">{hi:.3}</text><text x=\"4\" y=\"{b}\">{lo:.3}</text>\
             <text x=\"{LEFT}\" y=\"{below}\">0s</text><text x=\"{r2}\" y=\"{below}\">{last:.1}s</text>",
            q = esc(name),
            t = TOP + 8.0,
            b = H - BOTTOM,
            r = W - RIGHT,
            r2 = W - RIGHT - 20.0,
            below = H - BOTTOM + 16.0,
        );
        for m in r["phase_marks"].as_array().into_iter().flatten() {
            if let (Some(at), Some(phase)) = (seconds(&m["at"]), m["phase"].as_str()) {
                let _ = write!(
                    s,
                    "<line class=\"phase-mark\" x1=\"{a:.1}\" y1=\"{TOP}\" x2=\"{a:.1}\" y2=\"{b}\" stroke=\"#d0d7de\"/><text x=\"{tx:.1}\" y=\"{ty}\">{phase}</text>",
                    a = x(at),
                    b = H - BOTTOM,
                    tx = x(at) + 3.0,
                    ty = TOP + 20.0,
                );
            }
        }
        for l in &limits {
            let _ = write!(
                s,
                "<line class=\"tolerance\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{r}\" y2=\"{y:.1}\" stroke=\"#1a7f37\" stroke-dasharray=\"5 3\"/><text x=\"{tx}\" y=\"{ty:.1}\">{l}</text>",
                y = y(*l),
                r = W - RIGHT,
                tx = W - RIGHT + 4.0,
                ty = y(*l) + 4.0,
            );
        }
        let line: Vec<String> = mine
            .iter()
            .filter_map(|p| {
                Some(format!(
                    "{:.1},{:.1}",
                    x(seconds(&p["at"])?),
                    y(p["value"].as_f64()?)
                ))
            })
            .collect();
        let _ = write!(
            s,
            "<polyline class=\"value\" fill=\"none\" stroke=\"#8250df\" stroke-width=\"2\" points=\"{}\"/>",
            line.join(" ")
        );
        for p in mine.iter().filter(|p| p["breach"] == true) {
            if let (Some(at), Some(v)) = (seconds(&p["at"]), p["value"].as_f64()) {
                let _ = write!(
                    s,
                    "<circle class=\"breach\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"#cf222e\"><title>{v} out of tolerance</title></circle>",
                    x(at),
                    y(v)
                );
            }
        }
        if let Some(at) = seconds(&r["aborted_at"]) {
            let _ = write!(
                s,
                "<line class=\"abort\" x1=\"{a:.1}\" y1=\"{TOP}\" x2=\"{a:.1}\" y2=\"{b}\" stroke=\"#cf222e\" stroke-dasharray=\"3 3\"/>",
                a = x(at),
                b = H - BOTTOM,
            );
        }
        s.push_str("</svg>\n");
    }
    s.push_str("<p><span style=\"color:#8250df\">━</span> the query's value at each evaluation &nbsp; <span style=\"color:#1a7f37\">┅</span> its tolerance &nbsp; <span style=\"color:#cf222e\">●</span> out of tolerance</p>\n");
    s
}

/// The timeline: each probe's error rate (left axis) and p99 (right axis) per second,
/// the phases shaded, the abort marked.
fn chart(r: &Value) -> String {
    let points: Vec<&Value> = r["timeline"].as_array().into_iter().flatten().collect();
    let last = points
        .iter()
        .filter_map(|p| seconds(&p["at"]))
        .fold(0.0_f64, f64::max)
        + SLICE;
    let p99s: Vec<f64> = points.iter().filter_map(|p| seconds(&p["p99"])).collect();
    let max_p99 = p99s.iter().copied().fold(0.001_f64, f64::max);
    let x = |s: f64| LEFT + (W - LEFT - RIGHT) * s / last;
    let y_rate = |e: f64| TOP + (H - TOP - BOTTOM) * (1.0 - e);
    let y_p99 = |d: f64| TOP + (H - TOP - BOTTOM) * (1.0 - d / max_p99);
    let mut s = String::new();
    let _ = write!(
        s,
        "<h2>Timeline</h2>\n<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\n"
    );
    // Phases: a band each, from its start to the next one's (or the end).
    let marks: Vec<(String, f64)> = r["phase_marks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| Some((m["phase"].as_str()?.to_owned(), seconds(&m["at"])?)))
        .collect();
    for (i, (name, from)) in marks.iter().enumerate() {
        let to = marks.get(i + 1).map_or(last, |m| m.1).max(*from);
        let fill = match name.as_str() {
            "inject" => "#fff1e5",
            "recovery" => "#eef6ff",
            _ => "#f6f8fa",
        };
        let _ = writeln!(
            s,
            "<rect class=\"phase\" data-phase=\"{name}\" x=\"{:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{name}</text>",
            x(*from),
            (x(to) - x(*from)).max(1.0),
            H - TOP - BOTTOM,
            x(*from) + 4.0,
            TOP + 12.0 + 12.0 * (i % 2) as f64
        );
    }
    // Axes.
    let _ = writeln!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#8c959f\"/>\
         <text x=\"4\" y=\"{t}\">100%</text><text x=\"4\" y=\"{b}\">0%</text>\
         <text x=\"{rl}\" y=\"{t}\">{max_p99:.3}s</text><text x=\"{rl}\" y=\"{b}\">p99</text>\
         <text x=\"{LEFT}\" y=\"{below}\">0s</text><text x=\"{r2}\" y=\"{below}\">{last:.1}s</text>",
        b = H - BOTTOM,
        r = W - RIGHT,
        t = TOP + 8.0,
        rl = W - RIGHT + 4.0,
        r2 = W - RIGHT - 20.0,
        below = H - BOTTOM + 16.0,
    );
    // One error-rate line and one p99 line per probe.
    let mut probes: Vec<&str> = points.iter().filter_map(|p| p["probe"].as_str()).collect();
    probes.dedup();
    for (i, probe) in probes.iter().enumerate() {
        let mine: Vec<&&Value> = points.iter().filter(|p| p["probe"] == *probe).collect();
        let rate: Vec<String> = mine
            .iter()
            .filter_map(|p| {
                let t = seconds(&p["at"])? + SLICE / 2.0;
                Some(format!(
                    "{:.1},{:.1}",
                    x(t),
                    y_rate(p["error_rate"].as_f64().unwrap_or(0.0))
                ))
            })
            .collect();
        let lat: Vec<String> = mine
            .iter()
            .filter_map(|p| {
                let t = seconds(&p["at"])? + SLICE / 2.0;
                Some(format!("{:.1},{:.1}", x(t), y_p99(seconds(&p["p99"])?)))
            })
            .collect();
        let dash = if i == 0 {
            ""
        } else {
            " stroke-dasharray=\"4 2\""
        };
        let _ = writeln!(
            s,
            "<polyline class=\"error-rate\" data-probe=\"{p}\" fill=\"none\" stroke=\"#cf222e\" stroke-width=\"2\"{dash} points=\"{}\"/>\
             <polyline class=\"p99\" data-probe=\"{p}\" fill=\"none\" stroke=\"#0969da\" stroke-width=\"1.5\"{dash} points=\"{}\"/>",
            rate.join(" "),
            lat.join(" "),
            p = esc(probe),
        );
    }
    // Control against experiment: each cohort's error rate between two readings of the
    // admin API, while the rules were in.
    let readings: Vec<&Value> = r["cohort_timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    for (cohort, colour) in [("experiment", "#bc4c00"), ("control", "#1a7f37")] {
        let mut pts = Vec::new();
        for w in readings.windows(2) {
            let (Some(t), a, b) = (seconds(&w[1]["at"]), &w[0][cohort], &w[1][cohort]) else {
                continue;
            };
            let n = b["requests"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(a["requests"].as_u64().unwrap_or(0));
            let e = b["errors"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(a["errors"].as_u64().unwrap_or(0));
            if n > 0 {
                pts.push(format!("{:.1},{:.1}", x(t), y_rate(e as f64 / n as f64)));
            }
        }
        if !pts.is_empty() {
            let _ = writeln!(
                s,
                "<polyline class=\"cohort\" data-cohort=\"{cohort}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
                pts.join(" ")
            );
        }
    }
    if let Some(at) = seconds(&r["aborted_at"]) {
        let _ = writeln!(
            s,
            "<line id=\"abort\" x1=\"{a:.1}\" y1=\"{TOP}\" x2=\"{a:.1}\" y2=\"{b}\" stroke=\"#cf222e\" stroke-dasharray=\"3 3\"/>\
             <text x=\"{tx:.1}\" y=\"{ty}\" style=\"fill:#cf222e\">abort</text>",
            a = x(at),
            b = H - BOTTOM,
            tx = x(at) + 3.0,
            ty = TOP + 26.0,
        );
    }
    s.push_str("</svg>\n<p><span style=\"color:#cf222e\">━</span> probe error rate &nbsp; <span style=\"color:#0969da\">━</span> probe p99, per quarter second of the run &nbsp; <span style=\"color:#bc4c00\">━</span> experiment and <span style=\"color:#1a7f37\">━</span> control cohorts' error rates</p>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queries_are_drawn_with_their_breaches_and_warnings_listed() {
        let r = json!({
            "title": "t", "hypothesis": "h", "verdict": "aborted", "reason": "r",
            "scenario": "s", "phases": [], "injected": [], "timeline": [],
            "phase_marks": [{"phase": "baseline", "at": "0s"}, {"phase": "inject", "at": "3s"}],
            "aborted_at": "7s",
            "warnings": ["instance <x> appeared"],
            "queries": [{"phase": "inject", "query": "fleet-errors", "evaluations": 3,
                         "unjudged": 1, "min": 0.0, "max": 1.0, "last": 1.0,
                         "tolerance": "below 0.05", "bound": {"below": 0.05},
                         "within_tolerance": false}],
            "query_timeline": [
                {"query": "fleet-errors", "at": "1s", "value": null, "breach": false, "note": "no series"},
                {"query": "fleet-errors", "at": "4s", "value": 0.0, "breach": false},
                {"query": "fleet-errors", "at": "5s", "value": 1.0, "breach": true},
                {"query": "fleet-errors", "at": "6s", "value": 1.0, "breach": true}
            ]
        });
        let page = page(&r);
        assert!(page.contains("<svg class=\"query\" data-query=\"fleet-errors\""));
        assert_eq!(page.matches("<circle class=\"breach\"").count(), 2);
        assert_eq!(page.matches("<line class=\"tolerance\"").count(), 1);
        assert!(page.contains("<li>instance &lt;x&gt; appeared</li>"));
        assert!(page.contains("<td>below 0.05</td><td class=\"no\">no</td>"));
        let line = page.split("<polyline class=\"value\"").nth(1).unwrap();
        let points = line
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(
            points.split(' ').count(),
            3,
            "the evaluation without data is not drawn"
        );
    }
}
