//! Ctrl-C, SIGTERM and SIGHUP during a call: instead of dying with the ssh child
//! orphaned and the row left `running`, the process gets a readable pipe that
//! stops the call, so the row can say `interrupted`. Owns the signal
//! handlers; never exits the process itself.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

/// The read end of a pipe that becomes readable on SIGINT, SIGTERM or SIGHUP.
pub fn cancel_pipe() -> io::Result<OwnedFd> {
    let (read, write) = rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
    )?;
    // SIGHUP too: a closed terminal or a dropped ssh session must also leave
    // a finished row, not one `running` for ever.
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        let w = write.try_clone()?;
        signal_hook::low_level::pipe::register(sig, w)?;
    }
    Ok(read)
}

/// Empties the pipe after a cancelled call, so the next call is not cancelled too.
pub fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 64];
    while matches!(rustix::io::read(fd.as_fd(), &mut buf), Ok(n) if n > 0) {}
}
