//! Every deliberately invalid example fails `clusvc validate` with exit 2 and
//! exactly the errors recorded next to it (`NAME.expected`), each with
//! `file:line:col`.

use std::path::Path;

use assert_cmd::Command;

#[test]
fn invalid_examples_fail_with_the_recorded_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let Some(stem) = name.strip_suffix(".yaml.invalid") else {
            continue;
        };
        let expected = std::fs::read_to_string(dir.join(format!("{stem}.expected")))
            .unwrap_or_else(|_| panic!("{stem}.expected is missing"));
        let out = Command::cargo_bin("clusvc")
            .unwrap()
            .current_dir(&dir)
            .args(["validate", "-f", &name])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8(out.stderr)
            .unwrap()
            .replace(dir.to_str().unwrap(), "<dir>");
        assert_eq!(stderr, expected, "{name}");
        for line in stderr.lines().filter(|l| !l.starts_with("error:")) {
            let mut parts = line.splitn(4, ':');
            assert_eq!(parts.next(), Some(name.as_str()), "{line}");
            assert!(parts.next().unwrap().parse::<u32>().unwrap() > 0, "{line}");
            assert!(parts.next().unwrap().parse::<u32>().unwrap() > 0, "{line}");
        }
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} invalid examples");
}
