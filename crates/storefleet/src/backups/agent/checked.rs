//! A source whose end is only an end if the producer behind it succeeded. A dump program that dies
//! half-way, or a tar thread that hits an unreadable file, closes its pipe like a finished one; the
//! archive would then seal a truncated part. Here the reader's end waits for the producer's verdict
//! and turns a failure into a read error, which makes the archive abort the upload.
use std::future::Future;
use std::io;

use futures::StreamExt;
use tokio::io::AsyncRead;
use tokio_util::io::{ReaderStream, StreamReader};

use crate::backups::crypto::CHUNK;

pub fn ends_after<R, F>(reader: R, verdict: F) -> impl AsyncRead + Send + Unpin + 'static
where
    R: AsyncRead + Send + Unpin + 'static,
    F: Future<Output = io::Result<()>> + Send + 'static,
{
    let stream = async_stream::stream! {
        let mut out = ReaderStream::with_capacity(reader, CHUNK);
        while let Some(item) = out.next().await {
            let failed = item.is_err();
            yield item;
            if failed {
                return;
            }
        }
        if let Err(e) = verdict.await {
            yield Err(e);
        }
    };
    StreamReader::new(Box::pin(stream))
}
