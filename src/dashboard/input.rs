//! Key bindings: maps key presses to the intents that `App` carries out.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Action requested by a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Stop the pipeline and leave the dashboard.
    Quit,
    /// Pause reading frames, or resume.
    TogglePause,
    /// Select the face with the next higher track id, wrapping around.
    NextFace,
    /// Select the face with the next lower track id, wrapping around.
    PreviousFace,
    /// Show or hide the list of keys.
    ToggleHelp,
}

/// Keys and what they do, in the order the help overlay lists them.
pub const KEY_HELP: [(&str, &str); 6] = [
    ("q, Esc", "quit"),
    ("Ctrl-C", "quit"),
    ("space", "pause or resume"),
    ("Tab", "select next face"),
    ("Shift-Tab", "select previous face"),
    ("?", "show or hide this help"),
];

/// Maps a key press to its intent, or to `None` for unbound keys and key releases.
///
/// Ctrl-C arrives here as a key because raw mode turns off the terminal's SIGINT.
pub fn handle_key(key: KeyEvent) -> Option<Intent> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return matches!(key.code, KeyCode::Char('c' | 'C')).then_some(Intent::Quit);
    }
    match key.code {
        KeyCode::Char('q' | 'Q') | KeyCode::Esc => Some(Intent::Quit),
        KeyCode::Char(' ') => Some(Intent::TogglePause),
        KeyCode::Tab => Some(Intent::NextFace),
        KeyCode::BackTab => Some(Intent::PreviousFace),
        KeyCode::Char('?') => Some(Intent::ToggleHelp),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn keys_map_to_intents() {
        assert_eq!(handle_key(press(KeyCode::Char('q'))), Some(Intent::Quit));
        assert_eq!(handle_key(press(KeyCode::Esc)), Some(Intent::Quit));
        assert_eq!(
            handle_key(press(KeyCode::Char(' '))),
            Some(Intent::TogglePause)
        );
        assert_eq!(handle_key(press(KeyCode::Tab)), Some(Intent::NextFace));
        assert_eq!(
            handle_key(press(KeyCode::BackTab)),
            Some(Intent::PreviousFace)
        );
        assert_eq!(
            handle_key(press(KeyCode::Char('?'))),
            Some(Intent::ToggleHelp)
        );
        assert_eq!(handle_key(press(KeyCode::Char('x'))), None);
    }

    #[test]
    fn ctrl_c_quits() {
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        let ctrl_q = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::CONTROL);

        assert_eq!(handle_key(ctrl_c), Some(Intent::Quit));
        assert_eq!(handle_key(ctrl_q), None);
    }

    #[test]
    fn key_release_is_ignored() {
        let mut release = press(KeyCode::Char('q'));
        release.kind = KeyEventKind::Release;

        assert_eq!(handle_key(release), None);
    }
}
