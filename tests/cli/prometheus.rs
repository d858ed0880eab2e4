//! `stats --prometheus`: the textfile format, checked by a real parser, and `--output`'s
//! atomic, world-readable file.

use crate::harness::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// One parsed sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses exposition text with the `prometheus_client` Python package's own parser, the one
/// Prometheus tooling uses; returns every sample as (name, labels, value). `None` when the
/// parser is not installed (CI installs it and sets QSPOOL_TEST_NEEDS_PROMETHEUS, so there it
/// can never be skipped).
fn parse(text: &str) -> Option<Vec<Sample>> {
    const PY: &str = r#"
import json, sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit(3)
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    if fam.type != "gauge":
        sys.exit("not a gauge: " + fam.name)
    for s in fam.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut c = assert_cmd::Command::new("python3");
    let o = c.args(["-c", PY]).write_stdin(text).output();
    let o = match o {
        Ok(o) if o.status.code() != Some(3) => o,
        _ => {
            assert!(
                std::env::var_os("QSPOOL_TEST_NEEDS_PROMETHEUS").is_none(),
                "python3 with prometheus_client is needed and missing"
            );
            eprintln!("prometheus_client is not installed: the parser check is skipped");
            return None;
        }
    };
    assert!(
        o.status.success(),
        "parser refused it: {}\n{text}",
        stderr(&o)
    );
    let v: Vec<Sample> = serde_json::from_slice(&o.stdout).unwrap();
    Some(v)
}

fn samples_of(env: &Env) -> (String, Vec<Sample>) {
    let o = env.run(&["stats", "--prometheus"]);
    assert_exit(&o, 0);
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    let text = stdout(&o);
    let samples = parse(&text).unwrap_or_default();
    (text, samples)
}

#[test]
fn prometheus_counts_every_state_and_matches_json() {
    let env = Env::new();
    env.push("aa");
    env.push("bbbb");
    env.run(&["push", "--delay", "1h", "later"]);
    env.pop_json(&["--lease", "10m"]);
    let done = env.pop_json(&[]);
    assert_exit(&env.run(&["ack", &receipt(&done)]), 0);
    std::fs::write(env.spool().join("new").join("stray"), "x").unwrap();
    let (text, samples) = samples_of(&env);

    let json: Value = env.stats();
    let spool = std::path::absolute(env.spool()).unwrap();
    let spool = spool.to_str().unwrap();
    for state in ["ready", "delayed", "leased", "expired", "done", "dead"] {
        let line = format!(
            "qspool_messages{{spool=\"{spool}\",state=\"{state}\"}} {}\n",
            json[state]
        );
        assert!(text.contains(&line), "{line} in\n{text}");
    }
    assert!(text.contains(&format!("qspool_foreign_entries{{spool=\"{spool}\"}} 1\n")));
    // Bytes per state, from the payload sizes: "later" delayed (5), "aa" leased (2), "bbbb"
    // done (4).
    for (state, bytes) in [("ready", 0), ("delayed", 5), ("leased", 2), ("done", 4)] {
        let line = format!("qspool_bytes{{spool=\"{spool}\",state=\"{state}\"}} {bytes}\n");
        assert!(text.contains(&line), "{line} in\n{text}");
    }
    // No sample for a value that does not exist: nothing is ready or dead, so no oldest age.
    for state in ["ready", "expired", "dead"] {
        assert!(
            !text.contains(&format!(
                "qspool_oldest_message_age_seconds{{spool=\"{spool}\",state=\"{state}\"}}"
            )),
            "{state}: {text}"
        );
    }
    for state in ["delayed", "leased", "done"] {
        assert!(
            text.contains(&format!(
                "qspool_oldest_message_age_seconds{{spool=\"{spool}\",state=\"{state}\"}}"
            )),
            "{state}: {text}"
        );
    }
    if !samples.is_empty() {
        // No duplicate series, and every one labelled with the spool.
        let mut seen = std::collections::BTreeSet::new();
        for (name, labels, value) in &samples {
            assert!(
                seen.insert((name.clone(), labels.clone())),
                "duplicate {name} {labels:?}"
            );
            assert_eq!(labels.get("spool").map(String::as_str), Some(spool));
            assert!(*value >= 0.0, "{name} {value}");
        }
        assert_eq!(samples.len(), 6 + 6 + 3 + 1 + 2 + 1, "{samples:?}");
    }
}

#[test]
fn a_spool_path_with_quotes_and_backslashes_stays_one_label() {
    let env = Env::new();
    let odd = env.scratch().join("we\"ird\\spool");
    let o = env.run_at(&odd, &["push", "x"]);
    assert_exit(&o, 0);
    let o = env.run_at(&odd, &["stats", "--prometheus"]);
    assert_exit(&o, 0);
    if let Some(samples) = parse(&stdout(&o)) {
        let want = std::path::absolute(&odd).unwrap();
        for (_, labels, _) in &samples {
            assert_eq!(labels["spool"], want.to_str().unwrap());
        }
    }
}

#[test]
fn output_replaces_the_file_atomically_world_readable_whatever_the_umask() {
    let env = Env::new();
    env.push("x");
    let dir = env.scratch().join("textfile");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("qspool.prom");
    std::fs::write(&file, "old contents\n").unwrap();
    let o = env.run_umask(
        "077",
        &["stats", "--prometheus", "--output", file.to_str().unwrap()],
        b"",
    );
    assert_exit(&o, 0);
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{}", stderr(&o));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# HELP qspool_messages"), "{text}");
    // The same metrics as on standard output (ages aside: they move on between the runs).
    let steady = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with("qspool_oldest_message_age_seconds{"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        steady(&text),
        steady(&stdout(&env.run(&["stats", "--prometheus"])))
    );
    // Nothing left beside it, and in particular nothing a collector would read as .prom.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["qspool.prom"]);
}

#[test]
fn output_into_a_missing_directory_fails_in_one_line_and_leaves_nothing() {
    let env = Env::new();
    env.push("x");
    let file = env.scratch().join("nowhere").join("qspool.prom");
    let line = env
        .qspool(&["stats", "--prometheus", "--output", file.to_str().unwrap()])
        .fails(1);
    assert!(line.contains(file.to_str().unwrap()), "{line}");
    assert!(!Path::new(&file).exists());
}

#[test]
fn output_needs_prometheus_and_prometheus_excludes_json() {
    let env = Env::new();
    env.push("x");
    assert_exit(&env.run(&["stats", "--output", "/tmp/x.prom"]), 2);
    assert_exit(&env.run(&["stats", "--prometheus", "--json"]), 2);
}

#[test]
fn prometheus_on_a_missing_spool_is_an_error_not_zeros() {
    let env = Env::new();
    let o = env.run(&["stats", "--prometheus"]);
    assert_exit(&o, 1);
    assert!(o.stdout.is_empty());
}

#[test]
fn the_pause_and_the_rate_limit_are_series_a_real_parser_reads() {
    let env = Env::init(&["--rate", "100/s", "--burst", "20"]);
    env.push("x");
    env.qspool(&["pause"]).expect(0);
    let o = env.qspool(&["stats", "--prometheus"]).expect(0);
    let text = stdout(&o);
    for family in [
        "qspool_paused",
        "qspool_paused_since_seconds",
        "qspool_rate_limit_per_second",
        "qspool_rate_burst",
        "qspool_rate_current_per_second",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} gauge\n")),
            "{family}: {text}"
        );
    }
    if let Some(samples) = parse(&text) {
        let value = |name: &str| {
            samples
                .iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, _, v)| *v)
                .unwrap_or_else(|| panic!("{name}: {samples:?}"))
        };
        assert_eq!(value("qspool_paused"), 1.0);
        assert!((value("qspool_paused_since_seconds") - now_ms() as f64 / 1e3).abs() < 60.0);
        assert_eq!(value("qspool_rate_limit_per_second"), 100.0);
        assert_eq!(value("qspool_rate_burst"), 20.0);
        assert_eq!(value("qspool_rate_current_per_second"), 0.0);
    }
}
