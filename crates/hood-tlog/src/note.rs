//! C2SP signed notes with Ed25519 keys, and C2SP checkpoints inside them.
//!
//! A signed note is its text (ending in a newline), a blank line, then one
//! line per signature: `— <key name> <base64(key hash ‖ signature)>`. The
//! key hash is the first four bytes of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public
//! key)`, 0x01 naming Ed25519. A verifier key is written
//! `<name>+<hex key hash>+<base64(0x01 ‖ public key)>`.

use crate::error::TlogError;
use crate::hash::{Hash, HASH_LEN};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;

/// The algorithm byte of Ed25519 in signed notes.
const ALG_ED25519: u8 = 0x01;
/// What starts every signature line.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

fn check_name(name: &str) -> Result<(), TlogError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(TlogError::MalformedKey(format!(
            "key name {name:?} must be non-empty, without spaces or '+'"
        )));
    }
    Ok(())
}

fn key_hash(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// Signs notes under one key name.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    hash: [u8; 4],
}

impl fmt::Debug for NoteSigner {
    // Never the key itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer from a 32-byte Ed25519 seed (the caller draws and keeps it).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, TlogError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let hash = key_hash(name, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key,
            hash,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            hash: self.hash,
        }
    }

    /// The signed note of `text` (which must end in a newline).
    pub fn sign(&self, text: &str) -> Result<String, TlogError> {
        check_text(text)?;
        let signature = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(4 + 64);
        blob.extend_from_slice(&self.hash);
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            B64.encode(blob)
        ))
    }
}

fn check_text(text: &str) -> Result<(), TlogError> {
    if !text.ends_with('\n') {
        return Err(TlogError::MalformedNote(
            "text must end with a newline".into(),
        ));
    }
    if text.split('\n').any(|l| l.starts_with(SIGNATURE_PREFIX)) || text.contains("\n\n") {
        return Err(TlogError::MalformedNote(
            "text must not contain blank or signature lines".into(),
        ));
    }
    Ok(())
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_hash: [u8; 4],
    pub signature: Vec<u8>,
}

/// Splits a signed note into its text and signature lines.
fn split(note: &str) -> Result<(&str, Vec<NoteSignature>), TlogError> {
    let at = note
        .rfind("\n\n")
        .ok_or_else(|| TlogError::MalformedNote("no blank line before signatures".into()))?;
    let (text, rest) = note.split_at(at + 1);
    let sigs = &rest[1..];
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(TlogError::MalformedNote(
            "signature lines must end with a newline".into(),
        ));
    }
    let mut out = Vec::new();
    for line in sigs[..sigs.len() - 1].split('\n') {
        let body = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or_else(|| TlogError::MalformedNote(format!("not a signature line: {line:?}")))?;
        let (name, b64) = body
            .split_once(' ')
            .ok_or_else(|| TlogError::MalformedNote(format!("signature line {line:?}")))?;
        let blob = B64
            .decode(b64)
            .map_err(|e| TlogError::MalformedNote(format!("signature of {name}: {e}")))?;
        if blob.len() < 5 {
            return Err(TlogError::MalformedNote(format!(
                "signature of {name} too short"
            )));
        }
        out.push(NoteSignature {
            name: name.to_owned(),
            key_hash: [blob[0], blob[1], blob[2], blob[3]],
            signature: blob[4..].to_vec(),
        });
    }
    Ok((text, out))
}

/// Checks notes against one public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
    hash: [u8; 4],
}

impl NoteVerifier {
    /// The verifier of `name`'s raw Ed25519 public key.
    pub fn new(name: &str, public: &[u8; 32]) -> Result<Self, TlogError> {
        check_name(name)?;
        let key = VerifyingKey::from_bytes(public)
            .map_err(|_| TlogError::MalformedKey("not an Ed25519 point".into()))?;
        Ok(Self {
            name: name.to_owned(),
            key,
            hash: key_hash(name, public),
        })
    }

    /// Parses `<name>+<hex key hash>+<base64(0x01 ‖ public key)>`.
    pub fn parse(encoded: &str) -> Result<Self, TlogError> {
        let bad = |why: &str| TlogError::MalformedKey(format!("verifier key: {why}"));
        let mut parts = encoded.trim().splitn(3, '+');
        let (Some(name), Some(hash_hex), Some(key_b64)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("want <name>+<hash>+<key>"));
        };
        check_name(name)?;
        let raw = B64.decode(key_b64).map_err(|_| bad("key is not base64"))?;
        let (&alg, public) = raw.split_first().ok_or_else(|| bad("key is empty"))?;
        if alg != ALG_ED25519 {
            return Err(bad("only Ed25519 keys (algorithm 1)"));
        }
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| bad("an Ed25519 key is 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| bad("not an Ed25519 point"))?;
        let hash = key_hash(name, &public);
        if hex::encode(hash) != hash_hex.to_ascii_lowercase() {
            return Err(bad("key hash does not match name and key"));
        }
        Ok(Self {
            name: name.to_owned(),
            key,
            hash,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Checks that `note` carries a valid signature by this key; returns
    /// the signed text. Signatures by other keys are ignored.
    pub fn open<'n>(&self, note: &'n str) -> Result<&'n str, TlogError> {
        let (text, sigs) = split(note)?;
        for sig in sigs {
            if sig.name != self.name || sig.key_hash != self.hash {
                continue;
            }
            let Ok(bytes) = <[u8; 64]>::try_from(sig.signature.as_slice()) else {
                continue;
            };
            if self
                .key
                .verify_strict(text.as_bytes(), &Signature::from_bytes(&bytes))
                .is_ok()
            {
                return Ok(text);
            }
        }
        Err(TlogError::Unsigned(self.name.clone()))
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex::encode(self.hash),
            B64.encode(raw)
        )
    }
}

/// A C2SP checkpoint: the log's origin, its size and root hash, and any
/// extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: origin, size, base64 root, extensions, one per line.
    pub fn body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Parses a checkpoint's text (not its signatures).
    pub fn parse(text: &str) -> Result<Self, TlogError> {
        let bad = |why: String| TlogError::MalformedNote(format!("checkpoint: {why}"));
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("must end with a newline".into()))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("no origin line".into()))?;
        let size = lines.next().ok_or_else(|| bad("no size line".into()))?;
        if size.len() > 1 && size.starts_with('0') {
            return Err(bad(format!("size {size:?} has leading zeros")));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| bad(format!("size {size:?} is not a decimal number")))?;
        let root = lines.next().ok_or_else(|| bad("no root line".into()))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| <[u8; HASH_LEN]>::try_from(r).ok())
            .ok_or_else(|| bad(format!("root {root:?} is not a base64 SHA-256 hash")))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(bad("blank extension line".into()));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// This checkpoint as a note signed by `signer`.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, TlogError> {
        signer.sign(&self.body())
    }

    /// Checks a signed checkpoint against `verifier` and parses it.
    pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Self, TlogError> {
        Self::parse(verifier.open(note)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> NoteSigner {
        NoteSigner::from_seed("hood.example/ledger", &[7; 32]).unwrap()
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_verifier_key_and_only_that() {
        let cp = Checkpoint {
            origin: "hood.example/ledger".into(),
            size: 12,
            root: [9; 32],
            extensions: vec!["timestamp 1700000000".into()],
        };
        let note = cp.sign(&signer()).unwrap();
        assert!(note.starts_with("hood.example/ledger\n12\nCQkJ"), "{note}");
        let vkey = signer().verifier().to_string();
        let verifier = NoteVerifier::parse(&vkey).unwrap();
        assert_eq!(Checkpoint::open(&note, &verifier).unwrap(), cp);

        let other = NoteSigner::from_seed("hood.example/ledger", &[8; 32]).unwrap();
        assert!(matches!(
            Checkpoint::open(&note, &other.verifier()),
            Err(TlogError::Unsigned(_))
        ));
        // One changed digit of the size breaks the signature.
        let forged = note.replacen("\n12\n", "\n13\n", 1);
        assert!(Checkpoint::open(&forged, &verifier).is_err());
    }

    #[test]
    fn verifier_keys_round_trip_and_reject_a_wrong_hash() {
        let v = signer().verifier();
        let s = v.to_string();
        assert!(s.starts_with("hood.example/ledger+"));
        assert_eq!(NoteVerifier::parse(&s).unwrap(), v);
        let mut parts: Vec<&str> = s.split('+').collect();
        parts[1] = "00000000";
        assert!(NoteVerifier::parse(&parts.join("+")).is_err());
        assert!(NoteVerifier::parse("nonsense").is_err());
    }

    #[test]
    fn malformed_checkpoints_are_refused() {
        for text in [
            "",
            "origin\n",
            "origin\n01\nAAAA\n",
            "origin\n-1\nAAAA\n",
            "origin\n1\nnot base64!\n",
            "origin\n1\nAAAA\n",
            "origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ] {
            assert!(Checkpoint::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn text_must_end_in_a_newline_and_hold_no_blank_line() {
        assert!(signer().sign("no newline").is_err());
        assert!(signer().sign("a\n\nb\n").is_err());
    }
}
