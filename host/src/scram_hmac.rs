//! Kafka logins at the speed of the hash. A SCRAM login (how the platform and every tenant log
//! into Kafka) stretches the password with 4 096 HMACs, and librdkafka computes each one with
//! OpenSSL's one-shot `HMAC()`, which in OpenSSL 3 looks the MAC and the digest up by name on
//! every call: a few microseconds of lookups and locks around a fraction of one of hashing. With
//! a login per Kafka connection, that was two thirds of the platform's start-up CPU.
//!
//! This binary therefore defines `HMAC` itself, and the linker hands it to librdkafka ahead of
//! OpenSSL's. SHA-256 and SHA-512, the digests of Kafka's SCRAM mechanisms, are computed here
//! (RustCrypto's `hmac` and `sha2`); every other call, and any call this code does not
//! recognise, goes on to OpenSSL's own `HMAC`, so the function means exactly what OpenSSL's
//! does. Unlike OpenSSL, it does not wipe the key's hashed pads from its stack afterwards: the
//! key is the password, which librdkafka keeps in its config for the client's whole life.

use std::ffi::{c_int, c_uchar, c_uint, c_void};
use std::sync::OnceLock;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use openssl::hash::MessageDigest;
use sha2::{Sha256, Sha512};

/// OpenSSL 3's `HMAC`, as declared in `<openssl/hmac.h>`.
type HmacFn = unsafe extern "C" fn(
    *const c_void,
    *const c_void,
    c_int,
    *const c_uchar,
    usize,
    *mut c_uchar,
    *mut c_uint,
) -> *mut c_uchar;

/// OpenSSL's `HMAC(3)`: the MAC of `data` under `key` with digest `md`, written to `out`
/// (which holds at least `EVP_MAX_MD_SIZE` bytes) with its length in `out_len` when not null;
/// returns `out`, or null on failure.
///
/// # Safety
///
/// The same as OpenSSL's: `key` points to `key_len` bytes, `data` to `data_len` bytes, `out`
/// to `EVP_MAX_MD_SIZE` writable bytes, `md` is a digest OpenSSL gave out.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "C" fn HMAC(
    md: *const c_void,
    key: *const c_void,
    key_len: c_int,
    data: *const c_uchar,
    data_len: usize,
    out: *mut c_uchar,
    out_len: *mut c_uint,
) -> *mut c_uchar {
    // A null `out` asks for OpenSSL's static buffer: OpenSSL's to fill.
    if !out.is_null() {
        // SAFETY: the caller's promise, above.
        if let Some((mac, len)) = unsafe { computed_here(md, key, key_len, data, data_len) } {
            // SAFETY: `out` holds EVP_MAX_MD_SIZE (64) bytes, the most `len` is.
            unsafe { std::ptr::copy_nonoverlapping(mac.as_ptr(), out, len) };
            if !out_len.is_null() {
                // SAFETY: the caller's promise, above; a digest's length fits.
                unsafe { *out_len = len as c_uint };
            }
            return out;
        }
    }
    match openssl_hmac() {
        // SAFETY: OpenSSL's own function, called with the caller's arguments as they came.
        Some(hmac) => unsafe { hmac(md, key, key_len, data, data_len, out, out_len) },
        None => std::ptr::null_mut(),
    }
}

/// The MAC and its length when this code computes it: SHA-256 or SHA-512 with a key given (a
/// null key is OpenSSL's "the key before"); None hands the call on to OpenSSL.
///
/// # Safety
///
/// As [`HMAC`]'s.
unsafe fn computed_here(
    md: *const c_void,
    key: *const c_void,
    key_len: c_int,
    data: *const c_uchar,
    data_len: usize,
) -> Option<([u8; 64], usize)> {
    let key_len = usize::try_from(key_len).ok()?;
    if key.is_null() || (data.is_null() && data_len > 0) {
        return None;
    }
    // SAFETY: the caller's promise.
    let key = unsafe { std::slice::from_raw_parts(key.cast::<u8>(), key_len) };
    let data = match data_len {
        0 => &[][..],
        // SAFETY: the caller's promise.
        _ => unsafe { std::slice::from_raw_parts(data, data_len) },
    };
    let mut mac = [0u8; 64];
    let len = if md == MessageDigest::sha256().as_ptr().cast() {
        write_mac::<Hmac<Sha256>>(key, data, &mut mac)?
    } else if md == MessageDigest::sha512().as_ptr().cast() {
        write_mac::<Hmac<Sha512>>(key, data, &mut mac)?
    } else {
        return None;
    };
    Some((mac, len))
}

/// Writes the MAC (SHA-512's, 64 bytes, at most) to `out`; its length, or None if `M` refused
/// the key.
fn write_mac<M: Mac + KeyInit>(key: &[u8], data: &[u8], out: &mut [u8; 64]) -> Option<usize> {
    let mut mac = <M as KeyInit>::new_from_slice(key).ok()?;
    mac.update(data);
    let bytes = mac.finalize().into_bytes();
    out.get_mut(..bytes.len())?.copy_from_slice(&bytes);
    Some(bytes.len())
}

/// The next `HMAC` after this binary's in the link order: libcrypto's.
fn openssl_hmac() -> Option<HmacFn> {
    static FOUND: OnceLock<Option<HmacFn>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        // SAFETY: a lookup by a C string; the symbol, if found, is OpenSSL's `HMAC`, whose type
        // is `HmacFn`.
        let symbol = unsafe { libc::dlsym(libc::RTLD_NEXT, c"HMAC".as_ptr()) };
        (!symbol.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, HmacFn>(symbol) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MAC that `hmac` computes, or None if it failed.
    fn call(hmac: HmacFn, digest: MessageDigest, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        let mut out = [0u8; 64];
        let mut len: c_uint = 0;
        let key_len = c_int::try_from(key.len()).expect("a short key");
        // SAFETY: the slices' pointers and lengths, a 64-byte output.
        let done = unsafe {
            hmac(
                digest.as_ptr().cast(),
                key.as_ptr().cast(),
                key_len,
                data.as_ptr(),
                data.len(),
                out.as_mut_ptr(),
                &mut len,
            )
        };
        (!done.is_null()).then(|| out[..len as usize].to_vec())
    }

    #[test]
    fn rfc_4231_case_2_is_what_the_rfc_says() {
        let mac = call(
            HMAC,
            MessageDigest::sha256(),
            b"Jefe",
            b"what do ya want for nothing?",
        );
        let hex: String = mac
            .expect("a MAC")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn every_digest_and_length_matches_openssl() {
        let openssl = openssl_hmac().expect("libcrypto's HMAC");
        let mut found = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
        // SAFETY: asks which loaded object holds an address; `found` is written on success.
        let known = unsafe { libc::dladdr(openssl as *const c_void, found.as_mut_ptr()) };
        assert_ne!(known, 0, "no loaded object holds the HMAC found");
        // SAFETY: filled in by dladdr, which succeeded; its file name is a C string.
        let file = unsafe { std::ffi::CStr::from_ptr(found.assume_init().dli_fname) };
        assert!(
            file.to_string_lossy().contains("libcrypto"),
            "the HMAC found is in {file:?}, not OpenSSL's libcrypto"
        );
        let digests = [
            MessageDigest::sha256(),
            MessageDigest::sha512(),
            // Not computed here: handed on to OpenSSL's `HMAC`, which must answer the same.
            MessageDigest::sha1(),
            MessageDigest::sha384(),
        ];
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for digest in digests {
            // Keys shorter than, equal to and longer than both digests' blocks (64 and 128).
            for key_len in [0, 1, 31, 32, 63, 64, 65, 127, 128, 129, 200] {
                for data_len in [0, 1, 55, 56, 64, 111, 112, 128, 300] {
                    let key = &bytes[..key_len];
                    let data = &bytes[bytes.len() - data_len..];
                    let ours = call(HMAC, digest, key, data).expect("our MAC");
                    assert_eq!(
                        Some(ours),
                        call(openssl, digest, key, data),
                        "key {key_len} bytes, data {data_len} bytes, digest size {}",
                        digest.size()
                    );
                }
            }
        }
    }
}
