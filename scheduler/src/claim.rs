//! The per-job claim credential: random, handed to the Slurm job through
//! sbatch's environment (never argv), kept only as its SHA-256, compared in
//! constant time.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A fresh claim and its hash.
pub fn generate() -> (SecretString, [u8; 32]) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    let claim = SecretString::from(hex::encode(bytes));
    let hash = hash(&claim);
    (claim, hash)
}

/// SHA-256 of a claim.
pub fn hash(claim: &SecretString) -> [u8; 32] {
    Sha256::digest(claim.expose_secret().as_bytes()).into()
}

/// Whether `claim` is the one whose hash was stored.
pub fn matches(claim: &SecretString, stored_sha256: &[u8]) -> bool {
    stored_sha256.len() == 32 && bool::from(hash(claim).ct_eq(stored_sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_matches_its_hash_only() {
        let (claim, hash) = generate();
        assert!(matches(&claim, &hash));
        let (other, _) = generate();
        assert!(!matches(&other, &hash));
        assert!(!matches(&claim, &hash[..31]));
        assert_eq!(claim.expose_secret().len(), 64);
    }
}
