//! `hood keys …`: X25519 key pairs for key export, and opening a sealed
//! export locally (nothing leaves this machine).

use anyhow::{bail, Context, Result};
use base64::Engine;
use clap::Subcommand;
use hood_identity::sealed_box;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Makes an X25519 key pair: the secret key into a new file (mode
    /// 0600), the public key printed (and written with --public-key).
    Generate {
        #[arg(long)]
        secret_key: PathBuf,
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Opens an export (`hood -o json node export-keys …`, or its `sealed`
    /// base64) with your secret key; prints the key material as hex, or
    /// writes it raw to a new file (mode 0600) with --out.
    Open {
        #[arg(long)]
        secret_key: PathBuf,
        /// The export; default: standard input.
        #[arg(long)]
        sealed: Option<PathBuf>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// A key file's base64 (one line, surrounding whitespace ignored), checked
/// to be a 32-byte key.
pub fn read_key_file(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let b64 = text.trim().to_owned();
    let bytes = B64
        .decode(&b64)
        .with_context(|| format!("{} is not base64", path.display()))?;
    if bytes.len() != sealed_box::KEY_LEN {
        bail!(
            "{} holds {} bytes; an X25519 key is {}",
            path.display(),
            bytes.len(),
            sealed_box::KEY_LEN
        );
    }
    Ok(b64)
}

/// The sealed box in an export: the JSON `hood -o json node export-keys`
/// prints, or the bare base64 of its `sealed` field.
fn sealed_of(text: &str) -> Result<Vec<u8>> {
    let text = text.trim();
    let b64 = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => v["sealed"]
            .as_str()
            .or_else(|| v[0]["sealed"].as_str())
            .context("the JSON has no `sealed` field")?
            .to_owned(),
        Err(_) => text.to_owned(),
    };
    B64.decode(b64.trim())
        .context("the sealed export is not base64")
}

pub fn run(cmd: KeysCmd) -> Result<()> {
    match cmd {
        KeysCmd::Generate {
            secret_key,
            public_key,
        } => {
            let (secret, public) = sealed_box::generate_keypair();
            hood_files::create_private(&secret_key, format!("{}\n", B64.encode(secret)).as_bytes())
                .with_context(|| {
                    format!("creating {} (it must not exist yet)", secret_key.display())
                })?;
            let public = B64.encode(public);
            if let Some(path) = public_key {
                std::fs::write(&path, format!("{public}\n"))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            println!("{public}");
            Ok(())
        }
        KeysCmd::Open {
            secret_key,
            sealed,
            out,
        } => {
            let secret = B64.decode(read_key_file(&secret_key)?)?;
            let text = match sealed {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .context("reading the export from standard input")?;
                    s
                }
            };
            let material = sealed_box::open(&secret, &sealed_of(&text)?)
                .context("the export does not open with this secret key")?;
            match out {
                Some(path) => hood_files::create_private(&path, &material).with_context(|| {
                    format!("creating {} (it must not exist yet)", path.display())
                })?,
                None => {
                    let mut stdout = std::io::stdout().lock();
                    writeln!(stdout, "{}", hex::encode(&material))?;
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_is_read_as_json_or_bare_base64() {
        let (secret, public) = sealed_box::generate_keypair();
        let sealed = sealed_box::seal(&public, b"k").unwrap();
        let b64 = B64.encode(&sealed);
        for text in [
            b64.clone(),
            format!("{b64}\n"),
            serde_json::json!({"sealed": b64}).to_string(),
            serde_json::json!([{"sealed": b64}]).to_string(),
        ] {
            let got = sealed_of(&text).unwrap();
            assert_eq!(sealed_box::open(&secret, &got).unwrap(), b"k");
        }
        assert!(sealed_of("{}").is_err());
        assert!(sealed_of("not base64!").is_err());
    }
}
