//! Walking, hashing and manifests (filled in by the signing core).
