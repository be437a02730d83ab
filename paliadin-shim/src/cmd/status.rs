//! `status <session>`: one JSON object describing a session. Reads only;
//! never starts anything.

use paliadin_core::SessionName;

use crate::agent::Shim;
use crate::error::Result;
use crate::output::print_or_fail;

pub fn run(shim: &Shim, session: &SessionName) -> Result<()> {
    let v = crate::status::object(shim, session)?;
    print_or_fail(format!("{v}\n").as_bytes())
}
