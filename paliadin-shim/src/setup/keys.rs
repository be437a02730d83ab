//! The server's public key and the `authorized_keys` line that forces every
//! call of it into the shim: `[from="…",]restrict,command="<shim> --config
//! <config>" <type> <blob>[ <comment>]`. Parses and builds text only; the
//! file is changed by [`super::changes::Changes`].

use std::path::Path;

const TYPES: [&str; 8] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// A public key: its type, its base64 blob, and its comment (maybe empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kind: String,
    pub blob: String,
    pub comment: String,
}

/// The words of a line, split at blanks as `awk` splits them.
pub fn words(line: &str) -> impl Iterator<Item = &str> {
    line.split([' ', '\t']).filter(|w| !w.is_empty())
}

fn is_blob(w: &str) -> bool {
    w.len() > 4
        && w.starts_with("AAAA")
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
}

/// The first key line of the file `arg` (comments and blank lines
/// skipped), or the text `arg` itself.
pub fn read_pubkey(arg: &str) -> String {
    let text = if Path::new(arg).is_file() {
        let bytes = std::fs::read(arg).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        text.split('\n')
            .find(|l| !l.is_empty() && !l.trim_start_matches([' ', '\t', '\r']).starts_with('#'))
            .unwrap_or_default()
            .to_owned()
    } else {
        arg.to_owned()
    };
    text.split('\n').next().unwrap_or_default().to_owned()
}

/// The key on `line`: a known type followed by a blob, and the words after
/// the blob as its comment.
pub fn parse(line: &str) -> Option<PublicKey> {
    let w: Vec<&str> = words(line).collect();
    let i = (0..w.len().saturating_sub(1)).find(|&i| TYPES.contains(&w[i]) && is_blob(w[i + 1]))?;
    let blob = w[i + 1];
    let at = w.iter().position(|x| *x == blob).unwrap_or(i + 1);
    Some(PublicKey {
        kind: w[i].to_owned(),
        blob: blob.to_owned(),
        comment: w[at + 1..].join(" "),
    })
}

/// The line that authorizes `key` for the shim only.
pub fn forced_line(key: &PublicKey, shim: &Path, config: &Path, from: Option<&str>) -> String {
    let mut opts = format!(
        "restrict,command=\"{} --config {}\"",
        shim.display(),
        config.display()
    );
    if let Some(from) = from.filter(|f| !f.is_empty()) {
        opts = format!("from=\"{from}\",{opts}");
    }
    let mut line = format!("{opts} {} {}", key.kind, key.blob);
    if !key.comment.is_empty() {
        line.push(' ');
        line.push_str(&key.comment);
    }
    line
}

/// Whether some line of `text` holds `blob` as one of its words.
pub fn holds_blob(text: &[u8], blob: &str) -> bool {
    super::lines(text).any(|l| words(&String::from_utf8_lossy(l)).any(|w| w == blob))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_key_wherever_it_stands_on_the_line() {
        let k = parse("restrict ssh-ed25519 AAAAC3Nza+/= a  b").expect("key");
        assert_eq!(
            k,
            PublicKey {
                kind: "ssh-ed25519".into(),
                blob: "AAAAC3Nza+/=".into(),
                comment: "a b".into()
            }
        );
        assert_eq!(parse("ssh-ed25519"), None);
        assert_eq!(parse("ssh-ed25519 BBBB"), None);
        assert_eq!(parse("ssh-foo AAAAx"), None);
        let line = forced_line(
            &k,
            Path::new("/h/.local/bin/paliadin-shim"),
            Path::new("/h/.config/paliadin/shim.toml"),
            Some("10.0.0.1"),
        );
        assert_eq!(
            line,
            "from=\"10.0.0.1\",restrict,command=\"/h/.local/bin/paliadin-shim --config /h/.config/paliadin/shim.toml\" ssh-ed25519 AAAAC3Nza+/= a b"
        );
        assert!(holds_blob(
            b"x\nrestrict ssh-ed25519 AAAAC3Nza+/=\n",
            "AAAAC3Nza+/="
        ));
        assert!(!holds_blob(b"ssh-ed25519 AAAAC3Nza+/=x\n", "AAAAC3Nza+/="));
    }
}
