//! Writing and reading a backup: each part flows source → zstd → sealed 64 KiB chunks → SHA-256 →
//! streaming upload, and back the same way. Nothing holds a whole part: the buffers are one chunk,
//! zstd's window and the upload's parts in flight (see [`super::store`]), whatever the store's size.
//!
//! A restore calls [`verify`] first: every part listed, present, of the recorded size, with the recorded
//! SHA-256 and every chunk authentic. Only then does it call [`read_part`], which checks all of that
//! again as it goes and never writes out a chunk before that chunk is authenticated.
use std::pin::Pin;
use std::task::{Context, Poll};

use async_compression::tokio::bufread::ZstdEncoder;
use async_compression::tokio::write::ZstdDecoder;
use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};

use super::crypto::{
    CHUNK, HEADER_LEN, PartContext, PartOpener, PartSealer, PlatformKey, SEALED_CHUNK, TAG,
};
use super::manifest::{
    Compression, Encryption, Format, MANIFEST_VERSION, Manifest, PartName, PartRecord, Sha256Digest,
};
use super::store::{BackupStore, Upload};
use super::{BackupError, BackupId};
use crate::domain::{Engine, StoreId};

/// A backup being written. Parts first, in any order; [`BackupWriter::finish`] writes the manifest,
/// which is what makes the backup exist.
pub struct BackupWriter<'a> {
    store: &'a BackupStore,
    key: &'a PlatformKey,
    manifest: Manifest,
}

impl<'a> BackupWriter<'a> {
    pub fn begin(
        store: &'a BackupStore,
        key: &'a PlatformKey,
        store_id: StoreId,
        engine: Engine,
        chart_version: String,
    ) -> Self {
        let id = BackupId::new(Utc::now());
        Self::begin_as(store, key, store_id, id, engine, chart_version)
    }

    /// Like [`BackupWriter::begin`], under an id chosen beforehand (the controller names a backup,
    /// and its Job, before the agent runs).
    pub fn begin_as(
        store: &'a BackupStore,
        key: &'a PlatformKey,
        store_id: StoreId,
        backup_id: BackupId,
        engine: Engine,
        chart_version: String,
    ) -> Self {
        let started_at = Utc::now();
        Self {
            store,
            key,
            manifest: Manifest {
                format: Format::StorefleetBackup,
                version: MANIFEST_VERSION,
                store_id,
                backup_id,
                engine,
                chart_version,
                storefleet_version: env!("CARGO_PKG_VERSION").to_owned(),
                key_id: key.id(),
                started_at,
                finished_at: started_at,
                parts: Vec::new(),
            },
        }
    }

    pub fn backup_id(&self) -> &BackupId {
        &self.manifest.backup_id
    }

    /// Streams `source` (a dump's stdout, a tar) into the part `part`.
    pub async fn write_part(
        &mut self,
        part: PartName,
        source: impl AsyncRead + Unpin,
    ) -> Result<&PartRecord, BackupError> {
        if self.manifest.part(part).is_some() {
            return Err(BackupError::PartWrittenTwice(part));
        }
        let context = PartContext {
            store: self.manifest.store_id.clone(),
            backup: self.manifest.backup_id.clone(),
            part,
        };
        let record = write_part(self.store, self.key, &context, source).await?;
        self.manifest.parts.push(record);
        Ok(self.manifest.parts.last().expect("just pushed"))
    }

    /// Seals and stores the manifest. Refused unless every part of the engine was written.
    pub async fn finish(mut self) -> Result<Manifest, BackupError> {
        if let Some(missing) = PartName::ALL
            .into_iter()
            .find(|p| self.manifest.part(*p).is_none())
        {
            return Err(BackupError::PartNotWritten(missing));
        }
        self.manifest.finished_at = Utc::now();
        let m = &self.manifest;
        let path = self.store.manifest_path(&m.store_id, &m.backup_id);
        self.store.put(&path, m.seal(self.key)).await?;
        Ok(self.manifest)
    }
}

async fn write_part(
    store: &BackupStore,
    key: &PlatformKey,
    context: &PartContext,
    source: impl AsyncRead + Unpin,
) -> Result<PartRecord, BackupError> {
    let path = store.part_path(&context.store, &context.backup, context.part);
    let mut upload = store.upload(&path).await?;
    let mut compressed = ZstdEncoder::new(BufReader::with_capacity(CHUNK, Counting::new(source)));
    let mut sha = Sha256::new();
    let sealed = seal_into(
        &mut compressed,
        PartSealer::new(key, context),
        context.part,
        &mut upload,
        &mut sha,
    )
    .await;
    let stored = match sealed {
        Ok(stored) => {
            upload.finish().await?;
            stored
        }
        Err(e) => {
            upload.abort().await;
            return Err(e);
        }
    };
    Ok(PartRecord {
        name: context.part,
        compression: Compression::Zstd,
        encryption: Encryption::XChaCha20Poly1305StreamBe32,
        plain_bytes: compressed.get_ref().get_ref().count,
        stored_bytes: stored,
        sha256: Sha256Digest(sha.finalize().into()),
    })
}

/// Cuts `compressed` into chunks, seals and uploads them; returns the stored size.
async fn seal_into(
    compressed: &mut (impl AsyncRead + Unpin),
    mut sealer: PartSealer,
    part: PartName,
    upload: &mut Upload,
    sha: &mut Sha256,
) -> Result<u64, BackupError> {
    upload.write(sealer.header()).await?;
    sha.update(sealer.header());
    let mut stored = HEADER_LEN as u64;
    let mut chunk = Vec::with_capacity(SEALED_CHUNK);
    loop {
        chunk.clear();
        compressed
            .take(CHUNK as u64)
            .read_to_end(&mut chunk)
            .await
            .map_err(|e| io(part, "reading the source of", e))?;
        // A full chunk may be followed by more; anything shorter is the end (STREAM's last flag).
        if chunk.len() < CHUNK {
            sealer.seal_last(&mut chunk)?;
            upload.write(&chunk).await?;
            sha.update(&chunk);
            return Ok(stored + chunk.len() as u64);
        }
        sealer.seal_next(&mut chunk)?;
        upload.write(&chunk).await?;
        sha.update(&chunk);
        stored += chunk.len() as u64;
    }
}

/// Reads and checks `manifest.json` of backup `backup` of store `store`.
pub async fn open_manifest(
    store: &BackupStore,
    key: &PlatformKey,
    store_id: &StoreId,
    backup: &BackupId,
) -> Result<Manifest, BackupError> {
    let path = store.manifest_path(store_id, backup);
    let bytes = store
        .get_small(&path)
        .await?
        .ok_or_else(|| BackupError::ManifestMissing(path.to_string()))?;
    Manifest::open(&bytes, key, store_id, backup)
}

/// Checks the whole backup without changing anything: every part the engine needs is listed and
/// present with its recorded size (all checked before any download), then each part's SHA-256 and
/// every chunk's authenticity.
pub async fn verify(
    store: &BackupStore,
    key: &PlatformKey,
    manifest: &Manifest,
) -> Result<(), BackupError> {
    for part in PartName::ALL {
        present_with_recorded_size(store, manifest, part).await?;
    }
    for part in PartName::ALL {
        stream_part(store, key, manifest, part, None::<tokio::io::Sink>).await?;
    }
    Ok(())
}

/// Streams part `part`'s original bytes (the dump, the tar) into `out`, then shuts `out` down.
pub async fn read_part(
    store: &BackupStore,
    key: &PlatformKey,
    manifest: &Manifest,
    part: PartName,
    out: impl AsyncWrite + Unpin,
) -> Result<(), BackupError> {
    stream_part(store, key, manifest, part, Some(out)).await
}

async fn present_with_recorded_size<'m>(
    store: &BackupStore,
    manifest: &'m Manifest,
    part: PartName,
) -> Result<&'m PartRecord, BackupError> {
    let record = manifest
        .part(part)
        .ok_or(BackupError::PartNotInManifest(part))?;
    let path = store.part_path(&manifest.store_id, &manifest.backup_id, part);
    match store.size(&path).await? {
        None => Err(BackupError::PartMissing {
            part,
            object: path.to_string(),
        }),
        Some(found) if found != record.stored_bytes => Err(BackupError::PartSizeMismatch {
            part,
            found,
            recorded: record.stored_bytes,
        }),
        Some(_) => Ok(record),
    }
}

/// One pass over a stored part: hash, authenticate, and (with `out`) decompress into `out`.
async fn stream_part<W: AsyncWrite + Unpin>(
    store: &BackupStore,
    key: &PlatformKey,
    manifest: &Manifest,
    part: PartName,
    out: Option<W>,
) -> Result<(), BackupError> {
    let record = present_with_recorded_size(store, manifest, part).await?;
    let path = store.part_path(&manifest.store_id, &manifest.backup_id, part);
    let download = store
        .download(&path)
        .await?
        .ok_or_else(|| BackupError::PartMissing {
            part,
            object: path.to_string(),
        })?;
    let mut input = Hashing::new(download);
    let context = PartContext {
        store: manifest.store_id.clone(),
        backup: manifest.backup_id.clone(),
        part,
    };
    let mut out = out.map(ZstdDecoder::new);

    let opened = open_chunks(&mut input, key, &context, out.as_mut()).await;
    // Whatever stopped the pass, read the rest so the checksum speaks too: "altered" is the clearer
    // reason when the object is not the one that was written.
    let drained = tokio::io::copy(&mut input, &mut tokio::io::sink()).await;
    let (digest, count) = input.finish();
    if drained.is_ok() && (digest != record.sha256 || count != record.stored_bytes) {
        return Err(BackupError::PartAltered {
            part,
            found: digest,
            recorded: record.sha256,
        });
    }
    opened?;
    drained.map_err(|e| io(part, "reading", e))?;
    if let Some(out) = out.as_mut() {
        out.shutdown()
            .await
            .map_err(|e| io(part, "decompressing and writing out", e))?;
    }
    Ok(())
}

async fn open_chunks<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    input: &mut R,
    key: &PlatformKey,
    context: &PartContext,
    mut out: Option<&mut W>,
) -> Result<(), BackupError> {
    let part = context.part;
    let mut header = [0u8; HEADER_LEN];
    let got = read_up_to(input, &mut header[..]).await?;
    if got < HEADER_LEN {
        return Err(BackupError::PartTruncated(part));
    }
    let mut opener = PartOpener::new(key, context, &header)?;
    let mut chunk = Vec::with_capacity(SEALED_CHUNK);
    loop {
        chunk.clear();
        input
            .take(SEALED_CHUNK as u64)
            .read_to_end(&mut chunk)
            .await
            .map_err(|e| io(part, "reading", e))?;
        let last = chunk.len() < SEALED_CHUNK;
        if last && chunk.len() < TAG {
            // The stream stopped on a chunk boundary (or inside a tag): the last chunk is gone.
            return Err(BackupError::PartTruncated(part));
        }
        if last {
            opener.open_last(&mut chunk)?;
            emit(out.as_deref_mut(), &chunk, part).await?;
            break;
        }
        opener.open_next(&mut chunk)?;
        emit(out.as_deref_mut(), &chunk, part).await?;
    }
    // Nothing can follow the last chunk: bytes after it would have been read as part of it (the read
    // above takes up to a full chunk), and it would not have opened.
    Ok(())
}

/// Passes an authenticated chunk on to the decompressor, if this pass restores anything.
async fn emit<W: AsyncWrite + Unpin>(
    out: Option<&mut W>,
    chunk: &[u8],
    part: PartName,
) -> Result<(), BackupError> {
    if let Some(out) = out {
        out.write_all(chunk)
            .await
            .map_err(|e| io(part, "decompressing and writing out", e))?;
    }
    Ok(())
}

async fn read_up_to<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<usize, BackupError> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = r
            .read(&mut buf[filled..])
            .await
            .map_err(|e| BackupError::Io {
                what: "reading a stored part".into(),
                source: e,
            })?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

fn io(part: PartName, doing: &str, source: std::io::Error) -> BackupError {
    BackupError::Io {
        what: format!("{doing} the {part} part"),
        source,
    }
}

/// Counts what passes through, for the manifest's `plainBytes`.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R> Counting<R> {
    fn new(inner: R) -> Self {
        Self { inner, count: 0 }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.count += (buf.filled().len() - before) as u64;
        polled
    }
}

/// Hashes and counts what passes through: the stored object as downloaded.
struct Hashing<R> {
    inner: R,
    sha: Sha256,
    count: u64,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            sha: Sha256::new(),
            count: 0,
        }
    }

    fn finish(self) -> (Sha256Digest, u64) {
        (Sha256Digest(self.sha.finalize().into()), self.count)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Hashing<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let new = &buf.filled()[before..];
        self.sha.update(new);
        self.count += new.len() as u64;
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> PartContext {
        PartContext {
            store: StoreId::parse("store-00aa11").unwrap(),
            backup: BackupId::parse("backup-20260102-030405-abcdef").unwrap(),
            part: PartName::Database,
        }
    }

    /// A stored part of `chunks` full chunks and a short last one, as `seal_into` lays it out.
    fn sealed(key: &PlatformKey, chunks: usize) -> Vec<u8> {
        let mut sealer = PartSealer::new(key, &context());
        let mut out = sealer.header().to_vec();
        for i in 0..chunks {
            let mut c = vec![i as u8; CHUNK];
            sealer.seal_next(&mut c).unwrap();
            out.extend_from_slice(&c);
        }
        let mut last = b"tail".to_vec();
        sealer.seal_last(&mut last).unwrap();
        out.extend_from_slice(&last);
        out
    }

    async fn open(key: &PlatformKey, bytes: &[u8]) -> Result<(), BackupError> {
        let mut out = Vec::new();
        open_chunks(&mut &bytes[..], key, &context(), Some(&mut out)).await
    }

    #[tokio::test]
    async fn a_whole_part_opens() {
        let key = PlatformKey::generate();
        open(&key, &sealed(&key, 2)).await.unwrap();
    }

    // Past the size check (say the manifest and object were cut together): STREAM's last flag still
    // tells a part that ends on a chunk boundary from a whole one.
    #[tokio::test]
    async fn a_part_cut_at_a_chunk_boundary_is_truncated() {
        let key = PlatformKey::generate();
        let whole = sealed(&key, 2);
        for cut in [
            HEADER_LEN + SEALED_CHUNK,
            HEADER_LEN + 2 * SEALED_CHUNK,
            HEADER_LEN,
        ] {
            assert!(
                matches!(
                    open(&key, &whole[..cut]).await,
                    Err(BackupError::PartTruncated(PartName::Database))
                ),
                "cut at {cut}"
            );
        }
        // Cut inside a chunk: the short remainder is taken for the last chunk and fails to open.
        assert!(matches!(
            open(&key, &whole[..HEADER_LEN + SEALED_CHUNK + 100]).await,
            Err(BackupError::PartNotAuthentic { chunk: 2, .. })
        ));
        assert!(matches!(
            open(&key, &whole[..10]).await,
            Err(BackupError::PartTruncated(_))
        ));
    }

    #[tokio::test]
    async fn bytes_after_the_last_chunk_are_refused() {
        let key = PlatformKey::generate();
        let mut bytes = sealed(&key, 1);
        bytes.push(0);
        assert!(matches!(
            open(&key, &bytes).await,
            Err(BackupError::PartNotAuthentic { chunk: 2, .. })
        ));
    }
}
