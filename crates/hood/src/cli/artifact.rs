//! `hood artifact …`: push, list and show the binaries hosts install, and
//! `import-anvil`, which loads Foundry's anvil (the workload of the
//! `ethereum-anvil` chain) from its npm package in one line.

use super::client::{Client, ConnectOpts};
use super::columns;
use super::output::{list, show, Format};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use hood_api::routes::artifacts::{ArtifactView, PushedArtifactView};
use hood_api::views::Page;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The npm package Foundry ships anvil for Linux x86-64 in.
const ANVIL_NPM_PACKAGE: &str = "@foundry-rs/anvil-linux-amd64";
/// Path of the executable inside that package.
const ANVIL_NPM_PATH: &str = "bin/anvil";
/// Artifact name when the chain catalog does not name one (it is the
/// `artifact` of the shipped `ethereum-anvil` profile, which hosts pull).
const ANVIL_DEFAULT_ARTIFACT: &str = "anvil-linux-amd64";

#[derive(Debug, Subcommand)]
pub enum ArtifactCmd {
    /// Uploads FILE as artifact NAME VERSION, streamed. The server refuses it
    /// unless it hashes to --sha256 (default: the file's own SHA-256, so
    /// damage in transit is caught too). Needs a platform administrator.
    Push {
        name: String,
        version: String,
        file: PathBuf,
        /// Expected SHA-256 (hex); the push fails if FILE hashes otherwise.
        #[arg(long)]
        sha256: Option<String>,
    },
    /// Artifacts in the store.
    List {
        /// Only the versions of this artifact.
        #[arg(long)]
        name: Option<String>,
    },
    /// One artifact's metadata.
    Show { name: String, version: String },
    /// Installs anvil's npm package with this machine's `npm` into a
    /// temporary directory, checks the package integrity the chain catalog
    /// pins, and pushes bin/anvil as the artifact hosts pull.
    ImportAnvil {
        #[arg(long, default_value = "1.5.1")]
        version: String,
        /// Artifact name (default: the one the chain catalog uses,
        /// `anvil-linux-amd64`).
        #[arg(long)]
        name: Option<String>,
        /// The npm executable.
        #[arg(long, default_value = "npm")]
        npm: PathBuf,
    },
}

pub async fn run(opts: &ConnectOpts, format: Format, cmd: ArtifactCmd) -> Result<()> {
    match cmd {
        ArtifactCmd::Push {
            name,
            version,
            file,
            sha256,
        } => {
            let pushed = push(opts, &name, &version, &file, sha256.as_deref()).await?;
            show(format, &pushed, columns::PUSHED)?;
        }
        ArtifactCmd::List { name } => {
            let mut client = Client::new(opts)?;
            let path = match name {
                Some(n) => {
                    hood_artifacts::names::name(&n)?;
                    format!("/api/v1/artifacts?name={n}")
                }
                None => "/api/v1/artifacts".to_owned(),
            };
            let artifacts: Page<ArtifactView> = client.get(&path).await?;
            list(format, &artifacts, columns::ARTIFACT)?;
        }
        ArtifactCmd::Show { name, version } => {
            check_name_version(&name, &version)?;
            let mut client = Client::new(opts)?;
            let artifact: ArtifactView = client
                .get(&format!("/api/v1/artifacts/{name}/{version}"))
                .await?;
            show(format, &artifact, columns::ARTIFACT_DETAIL)?;
        }
        ArtifactCmd::ImportAnvil { version, name, npm } => {
            let pushed = import_anvil(opts, &version, name.as_deref(), &npm).await?;
            show(format, &pushed, columns::PUSHED)?;
        }
    }
    Ok(())
}

fn check_name_version(name: &str, version: &str) -> Result<()> {
    hood_artifacts::names::name(name)?;
    hood_artifacts::names::version(version)?;
    Ok(())
}

/// Hashes `file` locally (so a wrong --sha256 fails before any upload),
/// then streams it to the server announcing that checksum.
async fn push(
    opts: &ConnectOpts,
    name: &str,
    version: &str,
    file: &Path,
    sha256: Option<&str>,
) -> Result<PushedArtifactView> {
    check_name_version(name, version)?;
    let (actual, size) = hood_artifacts::sha256_file(file)
        .await
        .with_context(|| format!("reading {}", file.display()))?;
    if let Some(expected) = sha256 {
        let expected = hood_artifacts::names::sha256("--sha256", expected)?;
        if expected != actual {
            bail!(
                "{} hashes to sha256 {actual}, not the expected {expected}; nothing was pushed",
                file.display()
            );
        }
    }
    eprintln!(
        "pushing {} ({size} bytes, sha256 {actual}) as {name} {version}",
        file.display()
    );
    let mut client = Client::new(opts)?;
    let answer: PushedArtifactView = client
        .put_file(
            &format!("/api/v1/artifacts/{name}/{version}"),
            file,
            &[("X-Hood-Sha256", actual.as_str())],
        )
        .await?;
    if let Some(note) = push_note(name, version, &answer) {
        eprintln!("{note}");
    }
    Ok(answer)
}

/// What to tell the operator about a push that stored nothing new.
fn push_note(name: &str, version: &str, answer: &PushedArtifactView) -> Option<String> {
    match answer.outcome.as_str() {
        "existing" => Some(format!(
            "{name} {version} is already stored with this content: nothing changed"
        )),
        "restored" => Some(format!(
            "{name} {version} was in the catalog but its object was missing from the artifact \
             store: stored it again"
        )),
        _ => None,
    }
}

/// What the chain catalog says about an npm-sourced anvil version.
struct NpmPin {
    artifact: String,
    integrity: Option<String>,
}

/// Looks `version` of the anvil package up in the built-in chain catalog
/// (profiles and upgrade targets).
fn catalog_pin(version: &str) -> Result<Option<NpmPin>> {
    let catalog = hood_chains::builtin()
        .map_err(|report| anyhow::anyhow!("the built-in chain catalog does not load:\n{report}"))?;
    for chain in catalog.iter() {
        let targets = chain
            .profile
            .binaries
            .iter()
            .map(|b| (&b.artifact, &b.source))
            .chain(
                chain
                    .upgrades
                    .values()
                    .map(|u| (&u.to.artifact, &u.to.source)),
            );
        for (artifact, source) in targets {
            if let Some(hood_chains::ArtifactSource::Npm(npm)) = source {
                if npm.package == ANVIL_NPM_PACKAGE && npm.version == version {
                    return Ok(Some(NpmPin {
                        artifact: artifact.clone(),
                        integrity: npm.integrity.clone(),
                    }));
                }
            }
        }
    }
    Ok(None)
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn create(label: &str) -> Result<Self> {
        let path = std::env::temp_dir().join(format!("hood-{label}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn import_anvil(
    opts: &ConnectOpts,
    version: &str,
    name: Option<&str>,
    npm: &Path,
) -> Result<PushedArtifactView> {
    hood_artifacts::names::version(version)?;
    let pin = catalog_pin(version)?;
    let artifact = name
        .map(str::to_owned)
        .or_else(|| pin.as_ref().map(|p| p.artifact.clone()))
        .unwrap_or_else(|| ANVIL_DEFAULT_ARTIFACT.to_owned());
    hood_artifacts::names::name(&artifact)?;
    let pinned_integrity = pin.as_ref().and_then(|p| p.integrity.clone());
    if pinned_integrity.is_none() {
        eprintln!(
            "note: the chain catalog pins no npm integrity for anvil {version}; relying on npm's own check"
        );
    }

    let dir = TempDir::create("anvil")?;
    let spec = format!("{ANVIL_NPM_PACKAGE}@{version}");
    eprintln!("installing {spec} with {}", npm.display());
    // --os/--cpu: the package declares linux/x64 and npm would otherwise
    // refuse it on another platform; the artifact is for Linux hosts, not
    // for the machine running this command. No install scripts run.
    let out = tokio::process::Command::new(npm)
        .arg("install")
        .arg("--prefix")
        .arg(&dir.0)
        .args([
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--os=linux",
            "--cpu=x64",
            &spec,
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running `{} install` (is npm installed?)", npm.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "`npm install {spec}` failed ({}):\n{}",
            out.status,
            stderr.trim_end()
        );
    }

    let package_dir = dir.0.join("node_modules").join(ANVIL_NPM_PACKAGE);
    let installed = installed_package(&dir.0, &package_dir)?;
    if installed.version != version {
        bail!(
            "npm installed {ANVIL_NPM_PACKAGE} {}, not {version}",
            installed.version
        );
    }
    if let Some(pinned) = &pinned_integrity {
        match &installed.integrity {
            Some(got) if got == pinned => {
                eprintln!("npm integrity matches the chain catalog ({pinned})")
            }
            Some(got) => bail!(
                "{spec} has integrity {got}, but the chain catalog pins {pinned}; refusing to push"
            ),
            None => bail!(
                "npm recorded no integrity for {spec}; cannot check it against the chain catalog"
            ),
        }
    }
    let binary = package_dir.join(ANVIL_NPM_PATH);
    if !binary.is_file() {
        bail!("{spec} has no {ANVIL_NPM_PATH}");
    }
    push(opts, &artifact, version, &binary, None).await
}

struct Installed {
    version: String,
    integrity: Option<String>,
}

/// The installed version (the package's own package.json) and the
/// integrity npm verified the tarball against (its lockfile).
fn installed_package(prefix: &Path, package_dir: &Path) -> Result<Installed> {
    let read_json = |p: &Path| -> Result<Value> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))
    };
    let manifest = read_json(&package_dir.join("package.json"))?;
    let version = manifest
        .get("version")
        .and_then(Value::as_str)
        .context("the installed package.json has no version")?
        .to_owned();
    let lock = read_json(&prefix.join("package-lock.json"))?;
    let integrity = lock
        .get("packages")
        .and_then(|p| p.get(format!("node_modules/{ANVIL_NPM_PACKAGE}")))
        .and_then(|p| p.get("integrity"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Installed { version, integrity })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_catalog_pins_the_shipped_anvil_versions() {
        let pin = catalog_pin("1.5.1").unwrap().unwrap();
        assert_eq!(pin.artifact, "anvil-linux-amd64");
        assert!(pin.integrity.unwrap().starts_with("sha512-"));
        assert!(catalog_pin("1.7.1").unwrap().is_some(), "upgrade target");
        assert!(catalog_pin("0.0.1").unwrap().is_none());
    }

    #[test]
    fn pushes_that_store_nothing_new_say_so() {
        let answer = |outcome: &str| PushedArtifactView {
            artifact: ArtifactView {
                name: "anvil".into(),
                version: "1".into(),
                sha256: "a".repeat(64),
                size: 1,
                content_type: "application/octet-stream".into(),
                created_at: "2026-01-01T00:00:00Z".into(),
                created_by: None,
            },
            outcome: outcome.into(),
        };
        let note = |outcome: &str| push_note("anvil", "1", &answer(outcome));
        assert_eq!(note("created"), None);
        assert_eq!(
            note("existing").unwrap(),
            "anvil 1 is already stored with this content: nothing changed"
        );
        assert!(note("restored")
            .unwrap()
            .contains("its object was missing from the artifact store: stored it again"));
        assert_eq!(note("something new"), None);
    }

    #[test]
    fn installed_package_reads_version_and_integrity() {
        let dir = TempDir::create("test").unwrap();
        let pkg = dir.0.join("node_modules").join(ANVIL_NPM_PACKAGE);
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join("package.json"), r#"{"version":"1.5.1"}"#).unwrap();
        std::fs::write(
            dir.0.join("package-lock.json"),
            r#"{"packages":{"node_modules/@foundry-rs/anvil-linux-amd64":{"version":"1.5.1","integrity":"sha512-abc"}}}"#,
        )
        .unwrap();
        let got = installed_package(&dir.0, &pkg).unwrap();
        assert_eq!(got.version, "1.5.1");
        assert_eq!(got.integrity.as_deref(), Some("sha512-abc"));
        let path = dir.0.clone();
        drop(dir);
        assert!(!path.exists(), "temporary directory removed");
    }
}
