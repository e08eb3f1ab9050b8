//! The short fault campaign (`bench/chaos/chaos.py --short all`) against this build:
//! kill -9 under acknowledged writes (`always`, `everysec`), under multi-element
//! collection writes (no command half applied), and during eviction with
//! each policy, a full disk (when run as root), damaged segments and hints, connection
//! bursts at `max_clients`, and the memory of closed connections. Any lost, wrong or
//! older value fails it; the long campaign is run by hand (see README "Reliability").

use std::process::Command;

#[test]
fn the_short_fault_campaign_finds_nothing_lost_wrong_or_older() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/chaos/chaos.py");
    let out = Command::new("python3")
        .args([
            script,
            "--short",
            "--bin",
            env!("CARGO_BIN_EXE_caskade"),
            "all",
        ])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the campaign found a problem:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("== summary"), "{stdout}\n{stderr}");
}
