//! The GitHub Actions example (docs/ci/github-actions.yml), parsed and run: every step that
//! calls `wsclose` runs against committed captures, in a workspace laid out as the file
//! says (the reference capture, its expected report made as README says, and a capture
//! standing in for this run's recording); steps that need root (installing, recording)
//! are checked for shell syntax only.

use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

use crate::util::{root, TempDir};

const WORKFLOW: &str = "docs/ci/github-actions.yml";

/// The columns of the expected report in README's recipe: what does not change from one
/// recording to the next.
const STABLE: &str = "path,http_status,client_messages,server_messages,first_close_by,\
client_close_code,client_close_reason,server_close_code,server_close_reason,close_code,\
outcome,abnormal,exact,anomalies";

struct Step {
    name: String,
    run: Option<String>,
    uses: Option<String>,
}

struct Job {
    env: Vec<(String, String)>,
    steps: Vec<Step>,
}

fn str_of(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn load() -> (Yaml, Job) {
    let text = std::fs::read_to_string(root().join(WORKFLOW)).unwrap();
    let mut docs = YamlLoader::load_from_str(&text).expect("valid YAML");
    assert_eq!(docs.len(), 1);
    let doc = docs.remove(0);
    assert!(doc["name"].as_str().is_some(), "a workflow name");
    assert!(!doc["on"].is_badvalue(), "`on:` triggers");
    let jobs = doc["jobs"].as_hash().expect("jobs");
    assert_eq!(jobs.len(), 1);
    let (_, job) = jobs.iter().next().unwrap();
    assert!(job["runs-on"].as_str().is_some());
    let env = job["env"]
        .as_hash()
        .expect("job env")
        .iter()
        .map(|(k, v)| {
            (
                str_of(k).unwrap(),
                str_of(v).expect("env values are scalars"),
            )
        })
        .collect();
    let steps = job["steps"]
        .as_vec()
        .expect("steps")
        .iter()
        .map(|s| Step {
            name: s["name"].as_str().unwrap_or("").to_string(),
            run: s["run"].as_str().map(String::from),
            uses: s["uses"].as_str().map(String::from),
        })
        .collect();
    let job = Job { env, steps };
    (doc, job)
}

fn needs_root(run: &str) -> bool {
    run.contains("sudo ")
}

/// A workspace as the workflow expects it: the reference capture and its expected
/// report (made by README's recipe), and `recording` as this run's capture.
struct Workspace {
    dir: TempDir,
    bin: PathBuf,
}

impl Workspace {
    fn new(name: &str, reference: &str, recording: &str) -> Workspace {
        let dir = TempDir::new(name);
        for d in ["tests/ws", "runner-temp", "bin"] {
            std::fs::create_dir_all(dir.0.join(d)).unwrap();
        }
        std::fs::copy(
            root().join(reference),
            dir.0.join("tests/ws/reference.pcap"),
        )
        .unwrap();
        std::fs::copy(root().join(recording), dir.0.join("runner-temp/ws.pcap")).unwrap();
        let bin = dir.0.join("bin");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_wsclose"), bin.join("wsclose")).unwrap();
        let ws = Workspace { dir, bin };
        // README: a header naming the columns, then `check --update` fills in the rows.
        std::fs::write(
            ws.dir.0.join("tests/ws/expected.csv"),
            format!("{STABLE}\n"),
        )
        .unwrap();
        let st = ws
            .bash(
                "wsclose check -q tests/ws/reference.pcap --expect tests/ws/expected.csv \
                 --match path --update",
                &[],
            )
            .status
            .code();
        assert_eq!(st, Some(0));
        ws
    }

    /// Runs `script` as a GitHub Actions `run:` step (bash -e), with the job's env.
    fn bash(&self, script: &str, env: &[(String, String)]) -> std::process::Output {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("bash")
            .args([
                "--noprofile",
                "--norc",
                "-e",
                "-o",
                "pipefail",
                "-c",
                script,
            ])
            .current_dir(&self.dir.0)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUNNER_TEMP", self.dir.0.join("runner-temp"))
            .env("PATH", path)
            .output()
            .unwrap()
    }

    fn expected(&self) -> PathBuf {
        self.dir.0.join("tests/ws/expected.csv")
    }
}

/// Runs every wsclose step of the workflow; returns each step's name and exit code.
fn run_steps(job: &Job, ws: &Workspace) -> Vec<(String, i32, String)> {
    let mut ran = Vec::new();
    for s in &job.steps {
        let Some(run) = &s.run else { continue };
        if needs_root(run) {
            continue;
        }
        let out = ws.bash(run, &job.env);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ran.push((s.name.clone(), out.status.code().unwrap_or(-1), text));
    }
    ran
}

#[test]
fn the_workflow_parses_and_its_root_steps_are_valid_shell() {
    let (_, job) = load();
    let mut root_steps = 0;
    for s in &job.steps {
        match (&s.run, &s.uses) {
            (Some(run), None) => {
                assert!(!s.name.is_empty(), "every run step is named");
                if needs_root(run) {
                    root_steps += 1;
                    let out = Command::new("bash")
                        .args(["-n", "-c", run])
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{}: {}",
                        s.name,
                        String::from_utf8_lossy(&out.stderr)
                    );
                } else {
                    assert!(run.contains("wsclose "), "{}: runs wsclose", s.name);
                }
            }
            (None, Some(uses)) => {
                let (action, version) = uses.split_once('@').expect("a pinned action");
                assert!(action.starts_with("actions/"), "{uses}");
                assert!(version.starts_with('v'), "{uses}");
            }
            _ => panic!("a step has run or uses: {}", s.name),
        }
    }
    assert_eq!(root_steps, 2, "install and record");
    let env: Vec<&str> = job.env.iter().map(|(k, _)| k.as_str()).collect();
    for k in ["WS_REFERENCE", "WS_EXPECTED", "WS_PORT"] {
        assert!(env.contains(&k), "job env {k}");
    }
}

/// The reference capture and a second recording of the same sessions (the lossy pair:
/// the same three sessions captured on the server's and on the client's side) pass.
#[test]
fn the_wsclose_steps_pass_on_healthy_captures() {
    let (_, job) = load();
    let ws = Workspace::new(
        "ci-pass",
        "fixtures/captures/real-lossy.pcap",
        "fixtures/captures/real-lossy-client.pcap",
    );
    let expected = std::fs::read_to_string(ws.expected()).unwrap();
    assert_eq!(
        expected.lines().count(),
        4,
        "header and 3 sessions:\n{expected}"
    );
    let ran = run_steps(&job, &ws);
    assert_eq!(ran.len(), 3, "three wsclose steps");
    for (name, code, out) in &ran {
        assert_eq!(*code, 0, "{name}:\n{out}");
    }
    assert!(
        ran[0].2.contains("check passed: 3 matching"),
        "{}",
        ran[0].2
    );
    assert!(
        ran[1].2.contains("check passed: 3 matching"),
        "{}",
        ran[1].2
    );
    let report = ws.dir.0.join("runner-temp/ws-sessions.csv");
    assert_eq!(std::fs::read_to_string(report).unwrap().lines().count(), 4);
}

/// A recording whose sessions end badly fails the check and the policies; an expected
/// report that no longer describes the reference capture fails the first step.
#[test]
fn the_wsclose_steps_fail_on_regressions() {
    let (_, job) = load();
    let ws = Workspace::new(
        "ci-fail",
        "fixtures/captures/real-lossy.pcap",
        "fixtures/captures/real-mixed-endings.pcap",
    );
    let codes: Vec<i32> = run_steps(&job, &ws).iter().map(|r| r.1).collect();
    assert_eq!(codes, [0, 1, 1]);

    let ws = Workspace::new(
        "ci-edit",
        "fixtures/captures/real-lossy.pcap",
        "fixtures/captures/real-lossy-client.pcap",
    );
    let e = std::fs::read_to_string(ws.expected()).unwrap();
    std::fs::write(ws.expected(), e.replacen(",clean,", ",reset,", 1)).unwrap();
    let ran = run_steps(&job, &ws);
    let codes: Vec<i32> = ran.iter().map(|r| r.1).collect();
    assert_eq!(codes, [1, 1, 0]);
    assert!(
        ran[0]
            .2
            .contains("outcome: expected \"reset\", found \"clean\""),
        "{}",
        ran[0].2
    );
}

#[test]
fn readme_shows_the_workflow_file() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains(WORKFLOW), "README links {WORKFLOW}");
    assert!(Path::new(&root().join(WORKFLOW)).exists());
}
