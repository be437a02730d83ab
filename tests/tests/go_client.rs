//! The Go service (`RemotePaliadinService` in shared/seed) must keep working
//! against the Rust shim without a change: its exact ssh arguments, through
//! a private sshd whose authorized_keys forces the shim, and what it reads:
//! `ok` for health, the reply for a turn, 124 on timeout, 0 for reset.

use paliadin_tests::{b64, turn_id, ShimSettings, TestEnv};
use std::time::Duration;

#[test]
fn the_go_service_reads_what_it_expects() {
    let mut env = TestEnv::with(ShimSettings {
        wait_secs: 3,
        ..Default::default()
    });
    let session = "paliad-paliadin-0123abcd";
    let sshd = env.sshd();
    // healthGate: 3 s probe timeout, stdout trimmed must be "ok".
    let r = sshd.go_client(&["health", session], None, Duration::from_secs(30));
    assert_eq!(r.ok().trim(), "ok");
    let r = sshd.go_client(&["health", session], None, Duration::from_secs(3));
    assert_eq!(
        r.ok().trim(),
        "ok",
        "a warm probe answers within the Go client's 3 s"
    );
    // RunTurn: run-turn <session> <uuid> <base64>, stdout is the reply with its trailer.
    let msg = "Wie hoch ist die Rechnung 42?\nBitte mit [Rechnung 42](chip:invoice/42).";
    let r = sshd.go_client(
        &["run-turn", session, &turn_id(), &b64(msg)],
        None,
        Duration::from_secs(70),
    );
    let out = r.ok();
    let (body, meta) = paliadin_core::reply::split_trailer(&out);
    assert_eq!(body, msg);
    assert_eq!(meta.classifier_tag.as_deref(), Some("test"));
    assert_eq!(paliadin_core::reply::chip_count(&body), 1);
    // classifySSHError: "exit status 124" is its timeout.
    let r = sshd.go_client(
        &[
            "run-turn",
            session,
            &turn_id(),
            &b64("paliadin-test: silent\nhello?"),
        ],
        None,
        Duration::from_secs(70),
    );
    r.code(124);
    // ResetSession: reset <session>, exit 0.
    let r = sshd.go_client(&["reset", session], None, Duration::from_secs(30));
    assert_eq!(r.ok().trim(), "ok");
    // Invalid input is exit 2 (shim_error to the Go client), never 255.
    let r = sshd.go_client(
        &["run-turn", session, "not-a-uuid", "aGk="],
        None,
        Duration::from_secs(30),
    );
    r.code(2);
    assert!(
        r.stderr
            .contains("paliadin-shim: invalid_input: invalid turn id"),
        "{r}"
    );
}
