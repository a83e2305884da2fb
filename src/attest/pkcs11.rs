//! Keys held in a PKCS#11 token (HSM, smart card, SoftHSM), named by an RFC 7512 URI — the form
//! model_signing's `pkcs11-key` takes:
//!
//! `pkcs11:token=signing;object=release-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin`
//!
//! The key never leaves the token: the host hashes the DSSE encoding with the curve's hash and
//! asks the token for a raw ECDSA signature (`CKM_ECDSA`), which is then DER-encoded as Sigstore
//! bundles carry it. ECDSA P-256 and P-384 are supported. The PIN comes from `pin-source` (a
//! file) or the `MLSIGN_PKCS11_PIN` environment variable, never from the command line: a
//! `pin-value` in the URI is refused because argv is visible to every user of the machine.

use super::keys::{KeyKind, VerifyingKey};
use super::sign::SigningBackend;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::path::PathBuf;
use std::sync::Mutex;

/// Environment variable read for the PIN when the URI has no `pin-source`.
pub const PIN_ENV: &str = "MLSIGN_PKCS11_PIN";
/// Environment variable read for the module when the URI has no `module-path`.
pub const MODULE_ENV: &str = "MLSIGN_PKCS11_MODULE";

/// DER of the named-curve OIDs (CKA_EC_PARAMS).
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// Why a PKCS#11 key could not be used. Messages never contain the PIN.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid PKCS#11 URI: {0}")]
    Uri(String),
    #[error(
        "the PKCS#11 URI carries the PIN (pin-value), which would be visible in the process list; \
         put it in a file named by pin-source=file:/path, or in $MLSIGN_PKCS11_PIN"
    )]
    PinInUri,
    #[error(
        "no PKCS#11 module: add module-path=/path/to/module.so to the URI or set $MLSIGN_PKCS11_MODULE"
    )]
    NoModule,
    #[error("cannot load the PKCS#11 module {path}: {why}")]
    Module { path: PathBuf, why: String },
    #[error("PKCS#11 module {path}: {what} failed: {rv}")]
    Device {
        path: PathBuf,
        what: &'static str,
        rv: String,
    },
    #[error("no token matches {wanted} (tokens present: {present})")]
    NoToken { wanted: String, present: String },
    #[error("several tokens match {wanted} ({present}); add serial= or slot-id= to the URI")]
    AmbiguousToken { wanted: String, present: String },
    #[error("token '{token}': the PIN is wrong")]
    WrongPin { token: String },
    #[error("token '{token}': the PIN is locked; unlock it with the security officer PIN")]
    PinLocked { token: String },
    #[error("token '{token}': login failed: {rv}")]
    Login { token: String, rv: String },
    #[error(
        "token '{token}' needs a PIN: add pin-source=file:/path to the URI or set $MLSIGN_PKCS11_PIN"
    )]
    NoPin { token: String },
    #[error("pin-source {path}: {why}")]
    PinSource { path: String, why: String },
    #[error("token '{token}': no private key matches {wanted}")]
    NoObject { token: String, wanted: String },
    #[error("token '{token}': {count} private keys match {wanted}; add id= to the URI")]
    AmbiguousObject {
        token: String,
        wanted: String,
        count: usize,
    },
    #[error("token '{token}', {wanted}: {why}")]
    UnsupportedKey {
        token: String,
        wanted: String,
        why: String,
    },
    #[error(
        "token '{token}': a key matching {wanted} already exists; choose another object= or id="
    )]
    Exists { token: String, wanted: String },
}

/// A parsed RFC 7512 URI (the attributes mlsign uses).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub manufacturer: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub slot_id: Option<u64>,
    pub object: Option<String>,
    pub id: Option<Vec<u8>>,
    pub module_path: Option<PathBuf>,
    pub pin_source: Option<String>,
}

fn pct_decode(s: &str) -> Result<Vec<u8>, Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::Uri(format!("bad percent-encoding in {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn pct_text(name: &str, v: &str) -> Result<String, Error> {
    String::from_utf8(pct_decode(v)?)
        .map_err(|_| Error::Uri(format!("{name} is not UTF-8 after percent-decoding")))
}

impl Pkcs11Uri {
    /// Parse `pkcs11:path-attrs?query-attrs`. Unknown or repeated attributes are errors rather
    /// than silently widening which key is used.
    pub fn parse(uri: &str) -> Result<Pkcs11Uri, Error> {
        let rest = uri
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("pkcs11:"))
            .map(|_| &uri[7..])
            .ok_or_else(|| Error::Uri("it must start with `pkcs11:`".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut u = Pkcs11Uri::default();
        let mut seen = std::collections::HashSet::new();
        let attrs = path
            .split(';')
            .map(|a| (a, true))
            .chain(query.split('&').map(|a| (a, false)));
        for (attr, in_path) in attrs {
            if attr.is_empty() {
                continue;
            }
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| Error::Uri(format!("attribute {attr:?} has no `=`")))?;
            if !seen.insert(name.to_string()) {
                return Err(Error::Uri(format!("attribute {name} is given twice")));
            }
            match (name, in_path) {
                ("token", true) => u.token = Some(pct_text(name, value)?),
                ("manufacturer", true) => u.manufacturer = Some(pct_text(name, value)?),
                ("serial", true) => u.serial = Some(pct_text(name, value)?),
                ("model", true) => u.model = Some(pct_text(name, value)?),
                ("slot-id", true) => {
                    u.slot_id = Some(pct_text(name, value)?.parse().map_err(|_| {
                        Error::Uri(format!("slot-id {value:?} is not a decimal number"))
                    })?)
                }
                ("object", true) => u.object = Some(pct_text(name, value)?),
                ("id", true) => u.id = Some(pct_decode(value)?),
                ("type", true) => {
                    let t = pct_text(name, value)?;
                    if t != "private" {
                        return Err(Error::Uri(format!(
                            "type={t}: only private keys sign; use type=private or leave it out"
                        )));
                    }
                }
                ("module-path", false) => {
                    u.module_path = Some(PathBuf::from(pct_text(name, value)?))
                }
                ("pin-source", false) => u.pin_source = Some(pct_text(name, value)?),
                ("pin-value", false) => return Err(Error::PinInUri),
                ("module-name", false) => {
                    return Err(Error::Uri(
                        "module-name is not supported; give the library's full path as module-path"
                            .into(),
                    ))
                }
                (n, true) => {
                    return Err(Error::Uri(format!(
                    "path attribute {n:?} is not supported (known: token, manufacturer, serial, \
                         model, slot-id, object, id, type)"
                )))
                }
                (n, false) => {
                    return Err(Error::Uri(format!(
                        "query attribute {n:?} is not supported (known: module-path, pin-source)"
                    )))
                }
            }
        }
        if u.object.is_none() && u.id.is_none() {
            return Err(Error::Uri(
                "name the key with object=LABEL and/or id=%XX…".into(),
            ));
        }
        Ok(u)
    }

    /// How the key is named, for messages (no PIN source contents, no module path).
    fn key_desc(&self) -> String {
        let mut parts = Vec::new();
        if let Some(o) = &self.object {
            parts.push(format!("object={o}"));
        }
        if let Some(id) = &self.id {
            parts.push(format!("id={}", hex::encode(id)));
        }
        parts.join(";")
    }

    fn token_desc(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("token", &self.token),
            ("manufacturer", &self.manufacturer),
            ("serial", &self.serial),
            ("model", &self.model),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={v}"));
            }
        }
        if let Some(s) = self.slot_id {
            parts.push(format!("slot-id={s}"));
        }
        if parts.is_empty() {
            "any token".into()
        } else {
            parts.join(";")
        }
    }
}

/// Read the PIN: `pin-source` (a file path or `file:` URI) first, then [`PIN_ENV`].
fn read_pin(uri: &Pkcs11Uri, token: &str) -> Result<AuthPin, Error> {
    if let Some(src) = &uri.pin_source {
        let path = src
            .strip_prefix("file://")
            .or_else(|| src.strip_prefix("file:"))
            .unwrap_or(src);
        let bad = |why: String| Error::PinSource {
            path: path.to_string(),
            why,
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
        if !meta.is_file() || meta.len() > 1024 {
            return Err(bad("not a small regular file holding the PIN".into()));
        }
        let bytes = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| bad(e.to_string()))?);
        let text = std::str::from_utf8(&bytes).map_err(|_| bad("not UTF-8".into()))?;
        // One trailing newline is how `echo PIN > file` writes it, not part of the PIN.
        let pin = text.strip_suffix('\n').unwrap_or(text);
        let pin = pin.strip_suffix('\r').unwrap_or(pin);
        return Ok(AuthPin::new(pin.into()));
    }
    match std::env::var(PIN_ENV) {
        Ok(p) => Ok(AuthPin::new(p.into())),
        Err(_) => Err(Error::NoPin {
            token: token.to_string(),
        }),
    }
}

fn rv_of(e: &cryptoki::error::Error) -> Option<RvError> {
    match e {
        cryptoki::error::Error::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// An initialised module, the chosen token and a logged-in session.
struct Token {
    // Fields drop in order: the session closes before the module is finalized.
    session: Session,
    label: String,
    _ctx: Pkcs11,
}

fn open_token(uri: &Pkcs11Uri) -> Result<Token, Error> {
    let path = match &uri.module_path {
        Some(p) => p.clone(),
        None => std::env::var_os(MODULE_ENV)
            .map(PathBuf::from)
            .ok_or(Error::NoModule)?,
    };
    if !path.is_file() {
        return Err(Error::Module {
            path,
            why: "no such file".into(),
        });
    }
    let dev = |what: &'static str, e: cryptoki::error::Error| Error::Device {
        path: path.clone(),
        what,
        rv: e.to_string(),
    };
    let ctx = Pkcs11::new(&path).map_err(|e| Error::Module {
        path: path.clone(),
        why: e.to_string(),
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        Err(e) if rv_of(&e) == Some(RvError::CryptokiAlreadyInitialized) => {}
        Err(e) => return Err(dev("C_Initialize", e)),
    }
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| dev("C_GetSlotList", e))?;
    let mut present = Vec::new();
    let mut matches: Vec<(Slot, String)> = Vec::new();
    for slot in slots {
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        let label = info.label().trim_end().to_string();
        present.push(format!("'{label}' (slot {})", slot.id()));
        if !info.token_initialized() {
            continue;
        }
        let ok = uri.token.as_deref().is_none_or(|t| t == label)
            && uri
                .manufacturer
                .as_deref()
                .is_none_or(|m| m == info.manufacturer_id().trim_end())
            && uri
                .serial
                .as_deref()
                .is_none_or(|s| s == info.serial_number().trim_end())
            && uri
                .model
                .as_deref()
                .is_none_or(|m| m == info.model().trim_end())
            && uri.slot_id.is_none_or(|s| s == slot.id());
        if ok {
            matches.push((slot, label));
        }
    }
    let present_s = if present.is_empty() {
        "none".to_string()
    } else {
        present.join(", ")
    };
    let (slot, label) = match matches.len() {
        0 => {
            return Err(Error::NoToken {
                wanted: uri.token_desc(),
                present: present_s,
            })
        }
        1 => matches.remove(0),
        _ => {
            return Err(Error::AmbiguousToken {
                wanted: uri.token_desc(),
                present: present_s,
            })
        }
    };
    let pin = read_pin(uri, &label)?;
    let session = ctx
        .open_rw_session(slot)
        .map_err(|e| dev("C_OpenSession", e))?;
    match session.login(UserType::User, Some(&pin)) {
        Ok(()) => {}
        Err(e) => match rv_of(&e) {
            Some(RvError::UserAlreadyLoggedIn) => {}
            Some(RvError::PinIncorrect) | Some(RvError::PinLenRange) => {
                return Err(Error::WrongPin { token: label })
            }
            Some(RvError::PinLocked) => return Err(Error::PinLocked { token: label }),
            _ => {
                return Err(Error::Login {
                    token: label,
                    rv: e.to_string(),
                })
            }
        },
    }
    Ok(Token {
        session,
        label,
        _ctx: ctx,
    })
}

fn name_template(uri: &Pkcs11Uri, class: ObjectClass) -> Vec<Attribute> {
    let mut t = vec![Attribute::Class(class)];
    if let Some(o) = &uri.object {
        t.push(Attribute::Label(o.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        t.push(Attribute::Id(id.clone()));
    }
    t
}

/// The curve of CKA_EC_PARAMS.
fn curve_of(params: &[u8]) -> Option<KeyKind> {
    match params {
        P256_PARAMS => Some(KeyKind::P256),
        P384_PARAMS => Some(KeyKind::P384),
        _ => None,
    }
}

/// CKA_EC_POINT is a DER OCTET STRING around the SEC1 point (some tokens give the bare point).
fn sec1_point(raw: &[u8], kind: KeyKind) -> Option<&[u8]> {
    let n = match kind {
        KeyKind::P256 => 65,
        KeyKind::P384 => 97,
        _ => return None,
    };
    if raw.len() == n {
        return Some(raw);
    }
    match raw {
        [0x04, len, rest @ ..] if *len as usize == n && rest.len() == n => Some(rest),
        _ => None,
    }
}

fn public_key(kind: KeyKind, point: &[u8]) -> Option<VerifyingKey> {
    match kind {
        KeyKind::P256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
            .ok()
            .map(VerifyingKey::P256),
        KeyKind::P384 => p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
            .ok()
            .map(VerifyingKey::P384),
        _ => None,
    }
}

/// A private key on a token, usable as a [`SigningBackend`].
pub struct Pkcs11Key {
    token: String,
    wanted: String,
    kind: KeyKind,
    public: VerifyingKey,
    key: ObjectHandle,
    session: Mutex<Session>,
    _ctx: Pkcs11,
}

impl Pkcs11Key {
    /// Open the token the URI names, log in and find the key pair.
    pub fn open(uri: &Pkcs11Uri) -> Result<Pkcs11Key, Error> {
        let tok = open_token(uri)?;
        let wanted = uri.key_desc();
        let s = &tok.session;
        let no_object = || Error::NoObject {
            token: tok.label.clone(),
            wanted: wanted.clone(),
        };
        let unsupported = |why: String| Error::UnsupportedKey {
            token: tok.label.clone(),
            wanted: wanted.clone(),
            why,
        };
        let dev = |what: &'static str, e: cryptoki::error::Error| Error::Device {
            path: uri.module_path.clone().unwrap_or_default(),
            what,
            rv: e.to_string(),
        };
        let keys = s
            .find_objects(&name_template(uri, ObjectClass::PRIVATE_KEY))
            .map_err(|e| dev("C_FindObjects", e))?;
        let key = match keys.as_slice() {
            [] => return Err(no_object()),
            [k] => *k,
            _ => {
                return Err(Error::AmbiguousObject {
                    token: tok.label.clone(),
                    wanted: wanted.clone(),
                    count: keys.len(),
                })
            }
        };
        let attrs = s
            .get_attributes(key, &[AttributeType::KeyType, AttributeType::EcParams])
            .map_err(|e| dev("C_GetAttributeValue", e))?;
        let mut key_type = None;
        let mut params = None;
        for a in attrs {
            match a {
                Attribute::KeyType(t) => key_type = Some(t),
                Attribute::EcParams(p) => params = Some(p),
                _ => {}
            }
        }
        if key_type != Some(KeyType::EC) {
            return Err(unsupported(
                "not an elliptic-curve key; model signing needs ECDSA P-256 or P-384".into(),
            ));
        }
        let kind = params
            .as_deref()
            .and_then(curve_of)
            .ok_or_else(|| unsupported("curve is not P-256 or P-384".into()))?;
        // The public half: the public-key object with the same name, or CKA_EC_POINT on the
        // private object where the token offers it.
        let mut point = None;
        let pubs = s
            .find_objects(&name_template(uri, ObjectClass::PUBLIC_KEY))
            .map_err(|e| dev("C_FindObjects", e))?;
        for h in pubs.iter().copied().chain([key]) {
            if let Ok(v) = s.get_attributes(h, &[AttributeType::EcPoint]) {
                if let Some(Attribute::EcPoint(p)) = v.into_iter().next() {
                    point = Some(p);
                    break;
                }
            }
        }
        let point = point.ok_or_else(|| {
            unsupported(
                "no public key object with the same label/id (and the private key does not \
                 expose CKA_EC_POINT); import the public key on the token"
                    .into(),
            )
        })?;
        let public = sec1_point(&point, kind)
            .and_then(|p| public_key(kind, p))
            .ok_or_else(|| unsupported("malformed CKA_EC_POINT".into()))?;
        Ok(Pkcs11Key {
            token: tok.label,
            wanted,
            kind,
            public,
            key,
            session: Mutex::new(tok.session),
            _ctx: tok._ctx,
        })
    }
}

impl SigningBackend for Pkcs11Key {
    fn verifying_key(&self) -> VerifyingKey {
        self.public.clone()
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, super::Error> {
        self.sign_message(&msg)
    }

    fn sign_message(&self, msg: &dyn super::keys::Message) -> Result<Vec<u8>, super::Error> {
        use super::keys::digest_message;
        // The host hashes (streamed); the token signs the digest.
        let digest = match self.kind {
            KeyKind::P256 => digest_message::<sha2::Sha256>(msg),
            _ => digest_message::<sha2::Sha384>(msg),
        }
        .map_err(|e| super::Error::KeyFormat(format!("signing failed: {e}")))?;
        let session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let raw = session
            .sign(&Mechanism::Ecdsa, self.key, &digest)
            .map_err(|e| Error::Device {
                path: PathBuf::new(),
                what: "C_Sign",
                rv: format!("token '{}', {}: {e}", self.token, self.wanted),
            })?;
        let bad = || {
            super::Error::from(Error::UnsupportedKey {
                token: self.token.clone(),
                wanted: self.wanted.clone(),
                why: format!("the token returned a {}-byte ECDSA signature", raw.len()),
            })
        };
        Ok(match self.kind {
            KeyKind::P256 => p256::ecdsa::Signature::from_slice(&raw)
                .map_err(|_| bad())?
                .to_der()
                .as_bytes()
                .to_vec(),
            _ => p384::ecdsa::Signature::from_slice(&raw)
                .map_err(|_| bad())?
                .to_der()
                .as_bytes()
                .to_vec(),
        })
    }

    fn describe(&self) -> String {
        format!(
            "{} key on PKCS#11 token '{}' ({})",
            self.kind.name(),
            self.token,
            self.wanted
        )
    }
}

/// Generate a key pair on the token the URI names (label = `object`, id = `id` or a random
/// one); the private key is sensitive and not extractable. Returns its public key. Refuses to
/// create a second key under a name already in use.
pub fn generate(uri: &Pkcs11Uri, kind: KeyKind) -> Result<VerifyingKey, Error> {
    let params = match kind {
        KeyKind::P256 => P256_PARAMS,
        KeyKind::P384 => P384_PARAMS,
        _ => {
            return Err(Error::UnsupportedKey {
                token: uri.token.clone().unwrap_or_default(),
                wanted: uri.key_desc(),
                why: format!(
                    "{} keys cannot be made on a token by mlsign; use p256 or p384",
                    kind.name()
                ),
            })
        }
    };
    let tok = open_token(uri)?;
    let s = &tok.session;
    let dev = |what: &'static str, e: cryptoki::error::Error| Error::Device {
        path: uri.module_path.clone().unwrap_or_default(),
        what,
        rv: e.to_string(),
    };
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
        if !s
            .find_objects(&name_template(uri, class))
            .map_err(|e| dev("C_FindObjects", e))?
            .is_empty()
        {
            return Err(Error::Exists {
                token: tok.label.clone(),
                wanted: uri.key_desc(),
            });
        }
    }
    let id = match &uri.id {
        Some(id) => id.clone(),
        None => {
            let mut id = vec![0u8; 16];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
            id
        }
    };
    let label = uri.object.clone().unwrap_or_default().into_bytes();
    let public_t = vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::EcParams(params.to_vec()),
        Attribute::Label(label.clone()),
        Attribute::Id(id.clone()),
    ];
    let private_t = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Label(label),
        Attribute::Id(id.clone()),
    ];
    let (public, _private) = s
        .generate_key_pair(&Mechanism::EccKeyPairGen, &public_t, &private_t)
        .map_err(|e| dev("C_GenerateKeyPair", e))?;
    let point = match s.get_attributes(public, &[AttributeType::EcPoint]) {
        Ok(v) => v.into_iter().find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        }),
        Err(e) => return Err(dev("C_GetAttributeValue", e)),
    };
    point
        .as_deref()
        .and_then(|p| sec1_point(p, kind))
        .and_then(|p| public_key(kind, p))
        .ok_or_else(|| Error::UnsupportedKey {
            token: tok.label.clone(),
            wanted: uri.key_desc(),
            why: "the new public key's CKA_EC_POINT is malformed".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc7512_uris() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=my%20token;object=release-key;id=%01%ff?module-path=/usr/lib/x.so&pin-source=file:/run/pin",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("my token"));
        assert_eq!(u.object.as_deref(), Some("release-key"));
        assert_eq!(u.id.as_deref(), Some(&[0x01, 0xff][..]));
        assert_eq!(u.module_path, Some(PathBuf::from("/usr/lib/x.so")));
        assert_eq!(u.pin_source.as_deref(), Some("file:/run/pin"));
        let u = Pkcs11Uri::parse("PKCS11:object=k;slot-id=3;type=private").unwrap();
        assert_eq!(u.slot_id, Some(3));
    }

    #[test]
    fn refuses_pins_unknowns_and_ambiguity() {
        for (uri, want) in [
            ("pkcs11:object=k?pin-value=1234", "process list"),
            ("http:object=k", "pkcs11:"),
            ("pkcs11:token=t", "object="),
            ("pkcs11:object=k;object=j", "twice"),
            ("pkcs11:object=k;frob=1", "frob"),
            ("pkcs11:object=k?module-name=softhsm2", "module-path"),
            ("pkcs11:object=%zz", "percent"),
            ("pkcs11:object=k;type=public", "private"),
            ("pkcs11:object=k;slot-id=x", "slot-id"),
            ("pkcs11:object", "no `=`"),
        ] {
            let e = Pkcs11Uri::parse(uri).unwrap_err().to_string();
            assert!(e.contains(want), "{uri}: {e}");
            assert!(!e.contains("1234"), "the PIN must not be echoed: {e}");
        }
    }

    #[test]
    fn ec_point_forms() {
        let k = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let pt = k
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        let mut der = vec![0x04, 65];
        der.extend_from_slice(&pt);
        for raw in [&pt, &der] {
            let p = sec1_point(raw, KeyKind::P256).unwrap();
            assert_eq!(
                public_key(KeyKind::P256, p),
                Some(VerifyingKey::P256(*k.verifying_key()))
            );
        }
        assert!(sec1_point(&der[..40], KeyKind::P256).is_none());
        assert_eq!(curve_of(P384_PARAMS), Some(KeyKind::P384));
        assert_eq!(curve_of(&[0x06, 0x01, 0x00]), None);
    }
}
