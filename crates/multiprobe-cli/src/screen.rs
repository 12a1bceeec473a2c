//! The live table's screen: the terminal's alternate screen, as `top` and `less` use, so
//! redrawing it each second neither flickers (each frame overwrites the last in place, no
//! clear) nor fills the scrollback; the terminal gets its normal screen back on every way out
//! (the end of the run, Ctrl-C, a second Ctrl-C's immediate exit, a panic), and the final
//! summary is printed there, where it stays.

use std::io::Write;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::CliError;
use crate::output::Output;

/// Switch to the alternate screen and hide the cursor (xterm's private modes 1049 and 25).
const ENTER: &str = "\x1b[?1049h\x1b[?25l";
/// Show the cursor and go back to the normal screen, as it was.
const LEAVE: &str = "\x1b[?25h\x1b[?1049l";

/// Whether the alternate screen is on: read by [`restore`] from the signal thread and the
/// panic hook, which have no access to the guard.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The alternate screen, on while this lives.
pub struct AltScreen(());

impl AltScreen {
    /// Switches `out` (a terminal) to the alternate screen.
    pub fn enter(out: &mut Output) -> Result<AltScreen, CliError> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            // The panic message must land on the normal screen, where it stays readable.
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        ACTIVE.store(true, Ordering::SeqCst);
        out.text(ENTER)?;
        Ok(AltScreen(()))
    }
}

impl Drop for AltScreen {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen if it is on; safe to call from anywhere, any number of times.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let mut stdout = std::io::stdout();
        let _ = stdout.write_all(LEAVE.as_bytes());
        let _ = stdout.flush();
    }
}

/// One frame: from the top left, each line written over the last frame's and cleared to its
/// end, then everything below cleared; nothing is blanked first, so nothing flickers.
pub fn frame(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    out.push_str("\x1b[H");
    for line in text.lines() {
        out.push_str(line);
        out.push_str("\x1b[K\n");
    }
    out.push_str("\x1b[J");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_overwrites_in_place() {
        assert_eq!(frame("a\nbc\n"), "\x1b[Ha\x1b[K\nbc\x1b[K\n\x1b[J");
        assert!(!frame("x").contains("\x1b[2J"), "no clear: it flickers");
    }

    #[test]
    fn restore_leaves_only_once() {
        ACTIVE.store(true, Ordering::SeqCst);
        restore();
        assert!(!ACTIVE.load(Ordering::SeqCst));
        restore();
    }
}
