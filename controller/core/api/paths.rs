//! Where the daemon keeps its state and its socket by default, shared by
//! `clusvc run` (which creates them) and the client commands (which look
//! for the socket). Pure: the caller passes in who it runs as and the
//! environment.

use std::path::{Path, PathBuf};

/// The socket of a daemon run by root with no `--socket`.
pub const SYSTEM_SOCKET: &str = "/run/clusvc/clusvc.sock";

/// The socket's file name in the state directory (daemons not run by root).
pub const SOCKET_FILE: &str = "clusvc.sock";

/// The file in the state directory holding the bearer token `clusvc run`
/// creates for a TCP listener given none.
pub const TOKEN_FILE: &str = "token";

/// The default state directory: `/var/lib/clusvc` for root, otherwise
/// `$XDG_STATE_HOME/clusvc`, `$HOME/.local/state/clusvc` or `./clusvc`.
pub fn default_state_dir(
    root: bool,
    xdg_state_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> PathBuf {
    if root {
        return PathBuf::from("/var/lib/clusvc");
    }
    xdg_state_home
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| h.join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("clusvc")
}

/// The default socket: [`SYSTEM_SOCKET`] for root, `STATE-DIR/clusvc.sock`
/// otherwise.
pub fn default_socket(root: bool, state_dir: &Path) -> PathBuf {
    if root {
        PathBuf::from(SYSTEM_SOCKET)
    } else {
        state_dir.join(SOCKET_FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_uses_system_paths_and_others_their_state_home() {
        assert_eq!(
            default_state_dir(true, None, Some("/root".into())),
            Path::new("/var/lib/clusvc")
        );
        assert_eq!(
            default_state_dir(false, Some("/x/state".into()), Some("/home/a".into())),
            Path::new("/x/state/clusvc")
        );
        // A relative XDG_STATE_HOME is invalid (XDG Base Directory spec).
        assert_eq!(
            default_state_dir(false, Some("rel".into()), Some("/home/a".into())),
            Path::new("/home/a/.local/state/clusvc")
        );
        assert_eq!(
            default_socket(true, Path::new("/var/lib/clusvc")),
            Path::new(SYSTEM_SOCKET)
        );
        assert_eq!(
            default_socket(false, Path::new("/home/a/.local/state/clusvc")),
            Path::new("/home/a/.local/state/clusvc/clusvc.sock")
        );
    }
}
