//! `wp-content` as a tar stream, written and read by the `tar` crate on a blocking thread, bridged
//! to the async archive through an in-memory pipe of one chunk: memory stays bounded whatever the
//! folder's size, and no external `tar` runs.
//!
//! A restore never unpacks over the live folder: it extracts into a sibling folder on the same
//! volume, and only when that extraction is whole does it swap the two with renames. A failed or
//! refused restore therefore leaves the old files exactly as they were.
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tokio::io::{AsyncRead, DuplexStream};
use tokio_util::io::SyncIoBridge;

use super::checked::ends_after;
use crate::backups::crypto::CHUNK;

/// The folder's content as a tar (paths relative to it, symlinks kept as links), as a source that
/// fails at its end if packing failed.
pub fn pack(dir: &Path) -> anyhow::Result<impl AsyncRead + Send + Unpin + 'static> {
    if !dir.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    let dir = dir.to_owned();
    let (writer, reader) = tokio::io::duplex(CHUNK);
    let bridge = SyncIoBridge::new(writer);
    let packing = tokio::task::spawn_blocking(move || -> io::Result<()> {
        let mut tar = tar::Builder::new(bridge);
        tar.follow_symlinks(false);
        tar.append_dir_all(".", &dir)
            .map_err(|e| io::Error::other(format!("packing {}: {e}", dir.display())))?;
        let mut bridge = tar.into_inner()?;
        bridge.shutdown()
    });
    Ok(ends_after(reader, async move {
        packing.await.map_err(io::Error::other)?
    }))
}

/// A `wp-content` replacement being prepared beside the live folder.
pub struct Staging {
    live: PathBuf,
    staged: tempfile::TempDir,
}

impl Staging {
    /// A new empty folder next to `live` (same volume, so the swap is two renames).
    pub fn beside(live: &Path) -> anyhow::Result<Self> {
        let parent = live
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .with_context(|| format!("{} has no parent folder", live.display()))?;
        let staged = tempfile::Builder::new()
            .prefix(".wp-content.restore-")
            .tempdir_in(parent)
            .with_context(|| format!("creating a staging folder in {}", parent.display()))?;
        Ok(Self {
            live: live.to_owned(),
            staged,
        })
    }

    /// Unpacks the tar that `feed` writes into the pipe it is given. Both errors are kept: `feed`'s
    /// (an altered backup) explains an unpacking error (a cut-off tar), not the other way round.
    pub async fn unpack<F, Fut, E>(&self, feed: F) -> anyhow::Result<()>
    where
        F: FnOnce(DuplexStream) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let (writer, reader) = tokio::io::duplex(CHUNK);
        let bridge = SyncIoBridge::new(reader);
        let into = self.staged.path().to_owned();
        let unpacking = tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut archive = tar::Archive::new(bridge);
            archive.set_preserve_permissions(true);
            archive.set_preserve_mtime(true);
            // `unpack` refuses entries that would land outside the folder (`..`, absolute paths).
            archive.unpack(&into)?;
            // Read what follows the end-of-archive marker, so the writer never meets a closed pipe.
            io::copy(&mut archive.into_inner(), &mut io::sink())?;
            Ok(())
        });
        let (fed, unpacked) = tokio::join!(feed(writer), unpacking);
        fed.context("reading the files part")?;
        unpacked
            .context("the unpacking thread")?
            .context("unpacking the files part")?;
        Ok(())
    }

    /// Puts the staged folder in the live one's place: live → `.wp-content.old-*`, staged → live,
    /// then the old one is removed. The folder keeps the live one's permissions.
    pub fn swap(self) -> anyhow::Result<()> {
        let Self { live, staged } = self;
        let staged = staged.keep();
        let old = live.with_file_name(format!(
            ".wp-content.old-{}",
            staged
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.rsplit('-').next())
                .unwrap_or("previous")
        ));
        let permissions = match std::fs::metadata(&live) {
            Ok(m) => Some(m.permissions()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).context(format!("reading {}", live.display())),
        };
        let permissions = permissions.unwrap_or_else(|| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::Permissions::from_mode(0o755)
        });
        std::fs::set_permissions(&staged, permissions)
            .with_context(|| format!("setting the permissions of {}", staged.display()))?;
        let had_live = live.exists();
        if had_live {
            std::fs::rename(&live, &old).with_context(|| {
                format!(
                    "moving {} aside (is it a mount point? the agent needs its parent folder)",
                    live.display()
                )
            })?;
        }
        if let Err(e) = std::fs::rename(&staged, &live) {
            if had_live {
                // Put the old files back: a restore that cannot finish leaves them as they were.
                let _ = std::fs::rename(&old, &live);
            }
            let _ = std::fs::remove_dir_all(&staged);
            return Err(e).context(format!("moving the restored files into {}", live.display()));
        }
        if had_live {
            std::fs::remove_dir_all(&old)
                .with_context(|| format!("removing the old files at {}", old.display()))?;
        }
        Ok(())
    }
}
