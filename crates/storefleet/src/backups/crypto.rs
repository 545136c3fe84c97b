//! Encryption of a backup: the platform key, the sealed chunks of a part, and the manifest's seal.
//!
//! Parts are encrypted with XChaCha20-Poly1305 in the STREAM construction (`aead::stream`, big-endian
//! 32-bit counter): the ciphertext is cut into [`CHUNK`]-sized messages, each authenticated on its own,
//! so a reader can release a chunk as soon as it is checked and memory stays bounded. STREAM puts the
//! chunk's position and a "last chunk" flag into each nonce, so reordered, dropped or truncated chunks
//! fail authentication. XChaCha's 24-byte nonce leaves a 19-byte random prefix per part: random prefixes
//! under one long-lived platform key do not collide in practice (7 bytes, as plain ChaCha20-Poly1305
//! would leave, would).
use std::fmt;

use base64::Engine as _;
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{AeadCore, AeadInPlace, KeyInit, OsRng};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use super::manifest::PartName;
use super::{BackupError, BackupId};
use crate::domain::StoreId;

/// Plaintext bytes per sealed chunk. Memory per part in flight is a small multiple of this.
pub const CHUNK: usize = 64 * 1024;
/// Poly1305's tag, added to every chunk.
pub const TAG: usize = 16;
/// A sealed non-last chunk: exactly this long. The last chunk is shorter (its plaintext is shorter
/// than [`CHUNK`], possibly empty), which is how a reader knows it is the last.
pub const SEALED_CHUNK: usize = CHUNK + TAG;

/// The platform's backup key: 32 random bytes, kept in a Secret. Never printed.
#[derive(Clone)]
pub struct PlatformKey(Key);

impl PlatformKey {
    /// A Secret's value: 64 hex digits or standard base64 of 32 bytes (`openssl rand -base64 32`).
    /// Surrounding whitespace (the newline of a file) is ignored.
    pub fn parse(raw: &str) -> Result<Self, BackupError> {
        let raw = raw.trim();
        let bytes = if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(raw).ok()
        } else {
            base64::engine::general_purpose::STANDARD.decode(raw).ok()
        };
        match bytes {
            Some(b) if b.len() == 32 => Ok(Self(*Key::from_slice(&b))),
            _ => Err(BackupError::InvalidKey),
        }
    }

    /// A fresh random key (tests; a chart may generate one the same way).
    pub fn generate() -> Self {
        Self(XChaCha20Poly1305::generate_key(&mut OsRng))
    }

    /// A short public fingerprint, written into each manifest so that "sealed with another key" can
    /// be told apart from "altered" (a SHA-256 of a 256-bit random key reveals nothing about it).
    pub fn id(&self) -> KeyId {
        let mut h = Sha256::new();
        h.update(b"storefleet-backup key id\0");
        h.update(self.0);
        KeyId(hex::encode(&h.finalize()[..8]))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0)
    }
}

impl fmt::Debug for PlatformKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlatformKey(id {})", self.id())
    }
}

/// See [`PlatformKey::id`]: 16 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which backup and part a ciphertext belongs to. It is authenticated with every chunk, so a part
/// copied from another backup, store or part name fails even before checksums are compared.
#[derive(Clone, Debug)]
pub struct PartContext {
    pub store: StoreId,
    pub backup: BackupId,
    pub part: PartName,
}

impl PartContext {
    fn associated_data(&self, header: &[u8; HEADER_LEN]) -> Vec<u8> {
        let mut aad = header.to_vec();
        aad.extend_from_slice(b"storefleet-backup part v1\0");
        for field in [
            self.store.as_str(),
            self.backup.as_str(),
            self.part.as_str(),
        ] {
            aad.extend_from_slice(field.as_bytes());
            aad.push(0);
        }
        aad
    }
}

/// The first bytes of every part object: magic, format version, chunk size, nonce prefix.
pub const HEADER_LEN: usize = 32;
const MAGIC: &[u8; 8] = b"SFBKPART";
const FORMAT_VERSION: u8 = 1;
const NONCE_PREFIX_LEN: usize = 19;

fn header(prefix: &[u8; NONCE_PREFIX_LEN]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8] = FORMAT_VERSION;
    h[9..13].copy_from_slice(&(CHUNK as u32).to_be_bytes());
    h[13..].copy_from_slice(prefix);
    h
}

/// Encrypts one part chunk by chunk. Start with [`PartSealer::new`], store [`PartSealer::header`]
/// first, then every sealed chunk in order; the last one goes through [`PartSealer::seal_last`].
pub struct PartSealer {
    stream: EncryptorBE32<XChaCha20Poly1305>,
    header: [u8; HEADER_LEN],
    aad: Vec<u8>,
}

impl PartSealer {
    pub fn new(key: &PlatformKey, context: &PartContext) -> Self {
        let mut prefix = [0u8; NONCE_PREFIX_LEN];
        rand::rng().fill_bytes(&mut prefix);
        let header = header(&prefix);
        Self {
            stream: EncryptorBE32::from_aead(key.cipher(), (&prefix).into()),
            aad: context.associated_data(&header),
            header,
        }
    }

    pub fn header(&self) -> &[u8; HEADER_LEN] {
        &self.header
    }

    /// Seals exactly [`CHUNK`] bytes in place (the tag is appended).
    pub fn seal_next(&mut self, chunk: &mut Vec<u8>) -> Result<(), BackupError> {
        debug_assert_eq!(chunk.len(), CHUNK);
        self.stream
            .encrypt_next_in_place(&self.aad, chunk)
            .map_err(|_| BackupError::Crypto("a part has more chunks than STREAM can count"))
    }

    /// Seals the final, shorter-than-[`CHUNK`] (possibly empty) piece.
    pub fn seal_last(self, chunk: &mut Vec<u8>) -> Result<(), BackupError> {
        debug_assert!(chunk.len() < CHUNK);
        self.stream
            .encrypt_last_in_place(&self.aad, chunk)
            .map_err(|_| BackupError::Crypto("sealing the last chunk failed"))
    }
}

/// Decrypts one part: built from its header, then fed sealed chunks in order.
pub struct PartOpener {
    stream: DecryptorBE32<XChaCha20Poly1305>,
    aad: Vec<u8>,
    part: PartName,
    chunks: u64,
}

impl PartOpener {
    pub fn new(
        key: &PlatformKey,
        context: &PartContext,
        header: &[u8; HEADER_LEN],
    ) -> Result<Self, BackupError> {
        let malformed = |why: &'static str| BackupError::MalformedPart {
            part: context.part,
            why,
        };
        if &header[..8] != MAGIC {
            return Err(malformed("it does not start with a Storefleet part header"));
        }
        if header[8] != FORMAT_VERSION {
            return Err(malformed("its format version is not 1"));
        }
        if u32::from_be_bytes(header[9..13].try_into().expect("4 bytes")) as usize != CHUNK {
            return Err(malformed("its chunk size is not 64 KiB"));
        }
        let prefix: &[u8; NONCE_PREFIX_LEN] = header[13..].try_into().expect("19 bytes");
        Ok(Self {
            stream: DecryptorBE32::from_aead(key.cipher(), prefix.into()),
            aad: context.associated_data(header),
            part: context.part,
            chunks: 0,
        })
    }

    /// Opens a full-length ([`SEALED_CHUNK`]) chunk in place, leaving its plaintext.
    pub fn open_next(&mut self, chunk: &mut Vec<u8>) -> Result<(), BackupError> {
        self.chunks += 1;
        self.stream
            .decrypt_next_in_place(&self.aad, chunk)
            .map_err(|_| BackupError::PartNotAuthentic {
                part: self.part,
                chunk: self.chunks,
            })
    }

    /// Opens the final, shorter chunk; only after this succeeds is the part known to be complete.
    pub fn open_last(mut self, chunk: &mut Vec<u8>) -> Result<(), BackupError> {
        self.chunks += 1;
        let (part, chunks) = (self.part, self.chunks);
        self.stream
            .decrypt_last_in_place(&self.aad, chunk)
            .map_err(|_| BackupError::PartNotAuthentic {
                part,
                chunk: chunks,
            })
    }
}

/// The manifest's seal: a Poly1305 tag over the manifest's exact bytes (as associated data of an
/// empty XChaCha20-Poly1305 message), bound to the store and backup it claims to describe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seal {
    pub nonce: [u8; 24],
    pub tag: [u8; TAG],
}

fn manifest_aad(store: &StoreId, backup: &BackupId, manifest: &[u8]) -> Vec<u8> {
    let mut aad = b"storefleet-backup manifest v1\0".to_vec();
    for field in [store.as_str(), backup.as_str()] {
        aad.extend_from_slice(field.as_bytes());
        aad.push(0);
    }
    aad.extend_from_slice(manifest);
    aad
}

pub fn seal_manifest(
    key: &PlatformKey,
    store: &StoreId,
    backup: &BackupId,
    manifest: &[u8],
) -> Seal {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let tag = key
        .cipher()
        .encrypt_in_place_detached(&nonce, &manifest_aad(store, backup, manifest), &mut [])
        .expect("an empty message always seals");
    Seal {
        nonce: nonce.into(),
        tag: tag.into(),
    }
}

/// Whether `seal` was made by `key` over exactly these bytes for exactly this store and backup.
pub fn manifest_seal_holds(
    key: &PlatformKey,
    store: &StoreId,
    backup: &BackupId,
    manifest: &[u8],
    seal: &Seal,
) -> bool {
    key.cipher()
        .decrypt_in_place_detached(
            XNonce::from_slice(&seal.nonce),
            &manifest_aad(store, backup, manifest),
            &mut [],
            (&seal.tag).into(),
        )
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(part: PartName) -> PartContext {
        PartContext {
            store: StoreId::parse("store-00aa11").unwrap(),
            backup: BackupId::parse("backup-20260101-120000-abcdef").unwrap(),
            part,
        }
    }

    fn seal_all(key: &PlatformKey, ctx: &PartContext, data: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut sealer = PartSealer::new(key, ctx);
        let header = sealer.header().to_vec();
        let mut chunks = Vec::new();
        let mut pieces = data.chunks(CHUNK).peekable();
        let mut last = Vec::new();
        while let Some(piece) = pieces.next() {
            if piece.len() == CHUNK {
                let mut c = piece.to_vec();
                sealer.seal_next(&mut c).unwrap();
                chunks.push(c);
            } else {
                assert!(pieces.peek().is_none());
                last = piece.to_vec();
            }
        }
        sealer.seal_last(&mut last).unwrap();
        chunks.push(last);
        (header, chunks)
    }

    fn open_all(
        key: &PlatformKey,
        ctx: &PartContext,
        header: &[u8],
        chunks: &[Vec<u8>],
    ) -> Result<Vec<u8>, BackupError> {
        let mut opener = PartOpener::new(key, ctx, header.try_into().unwrap())?;
        let mut out = Vec::new();
        let (last, rest) = chunks.split_last().unwrap();
        for c in rest {
            let mut c = c.clone();
            opener.open_next(&mut c)?;
            out.extend_from_slice(&c);
        }
        let mut l = last.clone();
        opener.open_last(&mut l)?;
        out.extend_from_slice(&l);
        Ok(out)
    }

    #[test]
    fn chunks_round_trip_and_have_fixed_sizes() {
        let key = PlatformKey::generate();
        let ctx = context(PartName::Database);
        let data: Vec<u8> = (0..CHUNK * 2 + 100).map(|i| (i % 251) as u8).collect();
        let (header, chunks) = seal_all(&key, &ctx, &data);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].len(), SEALED_CHUNK);
        assert_eq!(chunks[2].len(), 100 + TAG);
        assert_eq!(open_all(&key, &ctx, &header, &chunks).unwrap(), data);
    }

    #[test]
    fn an_exact_multiple_of_the_chunk_ends_with_an_empty_last_chunk() {
        let key = PlatformKey::generate();
        let ctx = context(PartName::Files);
        let data = vec![7u8; CHUNK];
        let (header, chunks) = seal_all(&key, &ctx, &data);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1].len(), TAG);
        assert_eq!(open_all(&key, &ctx, &header, &chunks).unwrap(), data);
    }

    #[test]
    fn reordered_dropped_or_foreign_chunks_fail() {
        let key = PlatformKey::generate();
        let ctx = context(PartName::Database);
        let data: Vec<u8> = (0..CHUNK * 3 + 5).map(|i| (i % 253) as u8).collect();
        let (header, chunks) = seal_all(&key, &ctx, &data);

        let mut swapped = chunks.clone();
        swapped.swap(0, 1);
        assert!(matches!(
            open_all(&key, &ctx, &header, &swapped),
            Err(BackupError::PartNotAuthentic { chunk: 1, .. })
        ));

        // Dropping the real last chunk and presenting a full chunk as the last one.
        let truncated = chunks[..3].to_vec();
        assert!(open_all(&key, &ctx, &header, &truncated).is_err());

        // The same bytes claimed for the other part, or under another key, are refused.
        assert!(open_all(&key, &context(PartName::Files), &header, &chunks).is_err());
        assert!(open_all(&PlatformKey::generate(), &ctx, &header, &chunks).is_err());

        let mut flipped = chunks.clone();
        flipped[1][10] ^= 1;
        assert!(matches!(
            open_all(&key, &ctx, &header, &flipped),
            Err(BackupError::PartNotAuthentic { chunk: 2, .. })
        ));

        let mut bad_header = header.clone();
        bad_header[20] ^= 1; // the nonce prefix
        assert!(open_all(&key, &ctx, &bad_header, &chunks).is_err());
    }

    #[test]
    fn each_part_gets_its_own_nonce_prefix() {
        let key = PlatformKey::generate();
        let ctx = context(PartName::Database);
        assert_ne!(
            PartSealer::new(&key, &ctx).header(),
            PartSealer::new(&key, &ctx).header()
        );
    }

    #[test]
    fn keys_parse_from_hex_or_base64_and_never_print() {
        let hex_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let a = PlatformKey::parse(&format!("{hex_key}\n")).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(hex_key).unwrap());
        let b = PlatformKey::parse(&b64).unwrap();
        assert_eq!(a.id(), b.id());
        assert!(!format!("{a:?}").contains("0011"));
        assert!(!format!("{a:?}").contains(&b64[..8]));
        for bad in [
            "",
            "abc",
            &hex_key[..62],
            &base64::engine::general_purpose::STANDARD.encode([1u8; 31]),
        ] {
            assert!(PlatformKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_manifest_seal_binds_bytes_store_and_backup() {
        let key = PlatformKey::generate();
        let store = StoreId::parse("store-00aa11").unwrap();
        let backup = BackupId::parse("backup-20260101-120000-abcdef").unwrap();
        let other = BackupId::parse("backup-20260101-120000-abcde0").unwrap();
        let seal = seal_manifest(&key, &store, &backup, b"{\"a\":1}");
        assert!(manifest_seal_holds(
            &key,
            &store,
            &backup,
            b"{\"a\":1}",
            &seal
        ));
        assert!(!manifest_seal_holds(
            &key,
            &store,
            &backup,
            b"{\"a\":2}",
            &seal
        ));
        assert!(!manifest_seal_holds(
            &key,
            &store,
            &other,
            b"{\"a\":1}",
            &seal
        ));
        let other_store = StoreId::parse("store-00aa12").unwrap();
        assert!(!manifest_seal_holds(
            &key,
            &other_store,
            &backup,
            b"{\"a\":1}",
            &seal
        ));
        assert!(!manifest_seal_holds(
            &PlatformKey::generate(),
            &store,
            &backup,
            b"{\"a\":1}",
            &seal
        ));
    }
}
