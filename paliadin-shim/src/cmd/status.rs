//! `status <session>`: one JSON object describing a session. Reads only;
//! never starts anything.

use paliadin_core::SessionName;

use crate::agent::Shim;
use crate::error::Result;
use crate::output::print_or_fail;

pub fn run(shim: &Shim, session: &SessionName) -> Result<()> {
    let v = crate::status::object(shim, session)?;
    let json = paliadin_core::text::json_safe(v.to_string());
    print_or_fail(format!("{json}\n").as_bytes())
}
