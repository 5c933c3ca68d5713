//! Which partition a producer sends a session's events to: the partitioners
//! of librdkafka (`consistent_random`, its default) and of the Java client
//! and kafkajs (`murmur2_random`). Sharded mode routes a by-id request to
//! the owner of the partition the producers' partitioner picks for the id.

use serde::{Deserialize, Serialize};

/// A key partitioner, named as librdkafka's `partitioner` setting names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioner {
    /// CRC-32 of the key modulo the partition count (librdkafka's default:
    /// `session-ledger publish`, confluent-kafka, the rdkafka crate).
    #[default]
    ConsistentRandom,
    /// The Java client's murmur2, sign bit cleared, modulo the partition
    /// count (Java, kafkajs's default partitioner).
    Murmur2Random,
}

impl Partitioner {
    /// The partition of `key` among `partitions` (> 0).
    pub fn partition(self, key: &[u8], partitions: i32) -> i32 {
        let n = partitions.max(1) as u32;
        match self {
            Self::ConsistentRandom => (crc32fast::hash(key) % n) as i32,
            Self::Murmur2Random => ((murmur2(key) as u32 & 0x7fff_ffff) % n) as i32,
        }
    }
}

/// The Java client's murmur2 (seed `0x9747b28c`).
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, b) in rest.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_equals_the_java_client() {
        // Values printed by kafkajs 2.2.4's Java-compatible murmur2.
        assert_eq!(murmur2(b"hello"), 2_132_663_229);
        assert_eq!(murmur2(b"a"), -1_563_381_124);
        assert_eq!(murmur2(b"sess_0001"), 1_070_925_440);
        assert_eq!(murmur2(b"sess_abcdef_123"), 1_234_301_324);
        assert_eq!(Partitioner::Murmur2Random.partition(b"hello", 6), 3);
        assert_eq!(Partitioner::Murmur2Random.partition(b"a", 6), 4);
    }

    #[test]
    fn consistent_is_crc32_modulo() {
        // CRC-32 (IEEE) of "hello" is 0x3610a686.
        assert_eq!(
            Partitioner::ConsistentRandom.partition(b"hello", 7),
            (0x3610_a686u32 % 7) as i32
        );
        for n in 1..20 {
            let p = Partitioner::ConsistentRandom.partition(b"sess_x", n);
            assert!((0..n).contains(&p));
        }
    }
}
