//! Serves the suite's mock Anthropic Messages API (`paliadin_tests::mock_api`)
//! on a loopback port, for trying the real Claude Code by hand and for
//! benchmarks: `paliadin-mock-api [--port N] [--log FILE] [--script-side]
//! [--limits SPEC] [--consult-skill]`. Prints
//! `ANTHROPIC_BASE_URL=http://127.0.0.1:<port>` on stdout once it listens,
//! then serves until killed. Never binds anything but loopback. Set
//! `HTTPS_PROXY` to the same URL (and `NO_PROXY=127.0.0.1`) to see in
//! `--log` every host claude tries to reach besides it (`CONNECT`, refused).

use paliadin_tests::mock_api::{parse_limits, MockApi, Options, SideRequests};
use std::io::Write as _;
use std::net::SocketAddr;

const USAGE: &str = "usage: paliadin-mock-api [--port N] [--log FILE] [--script-side] [--limits SPEC] [--consult-skill]
  --port N         loopback port to listen on (default: 0, a free one)
  --log FILE       append every request as one JSON line to FILE
  --script-side    script side requests (no tools) like any other, instead of
                   answering them with a harmless title
  --limits SPEC    report a claude.ai subscriber's plan limits on every answer:
                   `subscriber` (5h 20 %, 7d 10 %), `limits [5h=U] [7d=U]
                   [5h-reset=T] [7d-reset=T]` (U a fraction; T `+S` seconds
                   from now or Unix seconds), or `limit-reached [5h|7d]
                   [reset=T]` (every model call 429 rejected); `none` (the
                   default) reports none, as for an API key. While it runs,
                   `POST /mock/limits` with a SPEC as its body changes them
  --consult-skill  answer each turn's first call with a Skill tool call, as a
                   real model may";

fn main() {
    let mut opts = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                let port = args.next().and_then(|p| p.parse::<u16>().ok());
                let Some(port) = port else {
                    fail("--port takes a port number")
                };
                opts.bind = SocketAddr::from(([127, 0, 0, 1], port));
            }
            "--log" => {
                let Some(p) = args.next() else {
                    fail("--log takes a file")
                };
                opts.log_file = Some(p.into());
            }
            "--script-side" => opts.side_requests = SideRequests::Script,
            "--limits" => {
                let Some(spec) = args.next() else {
                    fail("--limits takes a spec")
                };
                opts.limits =
                    parse_limits(&spec).unwrap_or_else(|e| fail(&format!("--limits: {e}")));
            }
            "--consult-skill" => opts.consult_skill = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => fail(&format!("unknown argument {other:?}")),
        }
    }
    let mock = MockApi::with(opts).unwrap_or_else(|e| fail(&format!("cannot listen: {e}")));
    println!("ANTHROPIC_BASE_URL={}", mock.url());
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("paliadin-mock-api: {msg}\n{USAGE}");
    std::process::exit(2);
}
