//! Terminal setup and restore: raw mode, the alternate screen and the cursor.
//!
//! The terminal is restored when [`TerminalGuard`] is dropped (normal exit and error exit) and
//! by a panic hook when the thread that set it up panics. The hook then calls the hook it
//! replaced, so the panic message is printed on the restored screen.

use std::io::{self, stdout, Stdout};
use std::sync::{Mutex, Once, PoisonError};
use std::thread::{self, ThreadId};

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::{cursor, execute};
use ratatui::Terminal;

/// The terminal type the dashboard draws on.
pub type Tui = Terminal<CrosstermBackend<Stdout>>;

/// The thread that set up the terminal, while the terminal is set up.
static OWNER: Mutex<Option<ThreadId>> = Mutex::new(None);

static PANIC_HOOK: Once = Once::new();

/// Terminal in raw mode on the alternate screen, restored when dropped.
pub struct TerminalGuard {
    terminal: Tui,
}

impl TerminalGuard {
    /// Enables raw mode, enters the alternate screen and hides the cursor.
    ///
    /// # Errors
    ///
    /// Returns the I/O error of the step that failed, after undoing the steps before it.
    pub fn enter() -> io::Result<Self> {
        install_panic_hook();
        set_owner(Some(thread::current().id()));
        let setup = enable_raw_mode()
            .and_then(|()| execute!(stdout(), EnterAlternateScreen, cursor::Hide))
            .and_then(|()| Terminal::new(CrosstermBackend::new(stdout())));
        match setup {
            Ok(terminal) => Ok(Self { terminal }),
            Err(error) => {
                // Best effort: the setup error is the one worth reporting.
                let _ = restore();
                Err(error)
            }
        }
    }

    /// Returns the terminal to draw on.
    pub fn terminal(&mut self) -> &mut Tui {
        &mut self.terminal
    }

    /// Restores the terminal now and reports failure, unlike a drop, which only logs it.
    ///
    /// # Errors
    ///
    /// Returns the first I/O error met. The later steps are still tried.
    pub fn restore(self) -> io::Result<()> {
        restore()
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if let Err(error) = restore() {
            tracing::warn!(%error, "failed to restore the terminal");
        }
    }
}

/// Leaves raw mode, leaves the alternate screen and shows the cursor if the terminal is set
/// up. Without a set-up terminal it does nothing, so a second call is harmless.
///
/// # Errors
///
/// Returns the first I/O error met. The later steps are still tried.
pub fn restore() -> io::Result<()> {
    if set_owner(None).is_none() {
        return Ok(());
    }
    // Raw mode goes first because a shell left in raw mode is the worst outcome.
    let raw_mode = disable_raw_mode();
    let screen = execute!(stdout(), LeaveAlternateScreen, cursor::Show);
    raw_mode.and(screen)
}

/// Stores the owning thread and returns the previous one.
fn set_owner(owner: Option<ThreadId>) -> Option<ThreadId> {
    // The lock guards a plain `Option`, which stays valid even after a panic poisoned it.
    let mut guard = OWNER.lock().unwrap_or_else(PoisonError::into_inner);
    std::mem::replace(&mut *guard, owner)
}

fn current_owner() -> Option<ThreadId> {
    *OWNER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Installs, once per process, a panic hook that restores the terminal before the previous
/// hook runs.
///
/// Only a panic on the thread that set up the terminal restores it. A pipeline thread that
/// panics must not take the screen away from a dashboard that is still drawing, so its panic
/// is logged instead. The previous hook's message for such a panic lands on the alternate
/// screen, where the next draw covers it.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if current_owner() == Some(thread::current().id()) {
                let _ = restore();
            } else if current_owner().is_some() {
                tracing::error!(thread = ?thread::current().name(), "panic: {info}");
            }
            previous(info);
        }));
    });
}
